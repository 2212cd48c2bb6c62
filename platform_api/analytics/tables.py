"""Aggregate tables of the product dashboard, rewritten day by day by `pipelines.analytics`.

Every figure is attributed to the day the item was shown (UTC) and to the impression's model version,
A/B arm, surface and position; the API reads only these tables, never the raw event log.
"""

from datetime import date, datetime

from sqlalchemy import Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from platform_api.db import Base, UTCDateTime

# A clicked impression converts when its workout is completed before the end of this many days after it was shown.
CONVERSION_DAYS = 7


class AnalyticsDaily(Base):
    """Impressions, the clicked ones and the clicked ones completed, per day and slate slot."""

    __tablename__ = "analytics_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    model_version: Mapped[str] = mapped_column(String(64), primary_key=True)
    arm: Mapped[str] = mapped_column(String(64), primary_key=True)
    surface: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    impressions: Mapped[int] = mapped_column(Integer)
    clicks: Mapped[int] = mapped_column(Integer)
    conversions: Mapped[int] = mapped_column(Integer)


class AnalyticsItemDaily(Base):
    """The same per day and item (top items, catalogue coverage)."""

    __tablename__ = "analytics_item_daily"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    item_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    arm: Mapped[str] = mapped_column(String(64), primary_key=True)
    surface: Mapped[str] = mapped_column(String(64), primary_key=True)
    impressions: Mapped[int] = mapped_column(Integer)
    clicks: Mapped[int] = mapped_column(Integer)
    conversions: Mapped[int] = mapped_column(Integer)


class AnalyticsDay(Base):
    """A day the pipeline aggregated: the catalogue's size then (coverage's denominator) and when."""

    __tablename__ = "analytics_day"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    catalogue_items: Mapped[int] = mapped_column(Integer)
    aggregated_at: Mapped[datetime] = mapped_column(UTCDateTime())
