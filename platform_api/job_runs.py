"""The worker's record of scheduled job runs: what ran, when, how long, how it ended (read by `/metrics`)."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from platform_api.db import Base, UTCDateTime


class JobRun(Base):
    __tablename__ = "job_run"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    job: Mapped[str] = mapped_column(String(64))
    worker: Mapped[str] = mapped_column(String(128))  # host:pid of the worker that ran it
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16))  # running | ok | failed
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_job_run_job_started_at", "job", "started_at"),)
