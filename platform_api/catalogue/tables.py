"""Catalogue tables: content items and workout plans (the items fitrec recommends)."""

from datetime import datetime

from sqlalchemy import JSON, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from platform_api.db import Base, UTCDateTime


class ContentItem(Base):
    __tablename__ = "content_item"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # exercise_guide | video | article
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(32))
    equipment: Mapped[list[str]] = mapped_column(JSON, default=list)
    mechanic: Mapped[str | None] = mapped_column(String(32))
    force: Mapped[str | None] = mapped_column(String(32))
    primary_muscles: Mapped[list[str]] = mapped_column(JSON, default=list)
    secondary_muscles: Mapped[list[str]] = mapped_column(JSON, default=list)
    exercise_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    duration_min: Mapped[int] = mapped_column(Integer)
    premium: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="ready")  # pending | ready
    source: Mapped[str] = mapped_column(String(16), default="catalogue")  # catalogue | trainer
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Trainer content (added by 0003_platform): owner and the uploaded media file.
    trainer_id: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    media_key: Mapped[str | None] = mapped_column(String(300), default=None)
    media_type: Mapped[str | None] = mapped_column(String(100), default=None)
    media_bytes: Mapped[int | None] = mapped_column(Integer, default=None)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class WorkoutPlan(Base):
    __tablename__ = "workout_plan"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    goal: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(64))
    equipment: Mapped[list[str]] = mapped_column(JSON, default=list)
    muscles: Mapped[list[str]] = mapped_column(JSON, default=list)
    exercise_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    weeks: Mapped[int] = mapped_column(Integer)
    sessions_per_week: Mapped[int] = mapped_column(Integer)
    minutes_per_session: Mapped[int] = mapped_column(Integer)
    premium: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Plans written by a trainer (added by 0003_platform); catalogue plans have none.
    trainer_id: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
