"""Trainer profiles and plan enrollments (plans themselves live in the catalogue tables)."""

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from platform_api.db import Base, UTCDateTime


class TrainerProfile(Base):
    __tablename__ = "trainer_profile"

    trainer_id: Mapped[str] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True
    )  # the trainer's user id
    display_name: Mapped[str] = mapped_column(String(120))
    bio: Mapped[str] = mapped_column(Text, default="")
    specialties: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PlanEnrollment(Base):
    __tablename__ = "plan_enrollment"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    plan_id: Mapped[str] = mapped_column(ForeignKey("workout_plan.id"))
    status: Mapped[str] = mapped_column(String(16))  # active | cancelled
    source: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(64))
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        # One enrollment row per user and plan: enrolling again reactivates it, never duplicates.
        UniqueConstraint("user_id", "plan_id", name="uq_plan_enrollment_user_id_plan_id"),
        Index("ix_plan_enrollment_user_id_enrolled_at", "user_id", "enrolled_at"),
    )
