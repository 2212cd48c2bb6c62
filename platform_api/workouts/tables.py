"""Workout sessions, their logged sets, and the achievements users earn."""

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from platform_api.db import Base, UTCDateTime


class WorkoutSession(Base):
    __tablename__ = "workout_session"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    plan_id: Mapped[str | None] = mapped_column(ForeignKey("workout_plan.id"))
    status: Mapped[str] = mapped_column(String(16))  # active | completed
    source: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration_min: Mapped[float | None] = mapped_column(Float)
    total_sets: Mapped[int] = mapped_column(Integer, default=0)
    total_reps: Mapped[int] = mapped_column(Integer, default=0)
    calories: Mapped[float | None] = mapped_column(Float)
    avg_rpe: Mapped[float | None] = mapped_column(Float)
    score: Mapped[int | None] = mapped_column(Integer)
    category: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_workout_session_user_id_started_at", "user_id", "started_at"),
        Index("ix_workout_session_user_id_status_completed_at", "user_id", "status", "completed_at"),
    )


class WorkoutSet(Base):
    __tablename__ = "workout_set"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("workout_session.id", ondelete="CASCADE"), index=True)
    log_id: Mapped[str] = mapped_column(String(36))  # one logging request: one exercise.logged event
    exercise_id: Mapped[str] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    reps: Mapped[int] = mapped_column(Integer, default=0)
    duration_s: Mapped[int] = mapped_column(Integer, default=0)
    weight_kg: Mapped[float] = mapped_column(Float, default=0)
    rpe: Mapped[float | None] = mapped_column(Float)
    logged_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Achievement(Base):
    __tablename__ = "achievement"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32))
    session_id: Mapped[str | None] = mapped_column(String(36))  # the workout that earned it
    earned_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("user_id", "code", name="uq_achievement_user_id_code"),)
