"""The event log: every fact the platform has seen, once per event_id."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from platform_api.db import Base, UTCDateTime


class EventLog(Base):
    __tablename__ = "event_log"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str | None] = mapped_column(String(64))
    item_id: Mapped[str | None] = mapped_column(String(128))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    properties: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_event_log_type_occurred_at", "event_type", "occurred_at"),
        Index("ix_event_log_user_id_occurred_at", "user_id", "occurred_at"),
        Index("ix_event_log_received_at", "received_at"),
    )
