"""Linked health providers (tokens encrypted at rest) and normalised daily metrics."""

from datetime import date, datetime

from sqlalchemy import Date, Float, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from platform_api.db import Base, UTCDateTime


class HealthIntegration(Base):
    __tablename__ = "health_integration"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(32))
    # Fernet tokens: never plaintext in the database, useless without settings.encryption_key.
    access_token_enc: Mapped[bytes] = mapped_column(LargeBinary)
    refresh_token_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Scheduled sync: `revoked` (the provider refused the refresh token) stops retrying until re-linked.
    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    sync_error: Mapped[str | None] = mapped_column(Text)
    sync_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (UniqueConstraint("user_id", "provider", name="uq_health_integration_user_id_provider"),)


class HealthMetricDay(Base):
    """One user's day from one source, in canonical units (count, minutes, bpm, kg)."""

    __tablename__ = "health_metric_day"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    steps: Mapped[int | None] = mapped_column(Integer)
    active_minutes: Mapped[int | None] = mapped_column(Integer)
    resting_hr: Mapped[float | None] = mapped_column(Float)
    sleep_minutes: Mapped[int | None] = mapped_column(Integer)
    weight_kg: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
