"""Queries of the analytics API: sums over the aggregate tables only (never the event log)."""

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from sqlalchemy import ColumnElement, distinct, func, select
from sqlalchemy.orm import Session

from platform_api.analytics.schemas import (
    ArmMetrics,
    CoverageDay,
    CoveragePublic,
    DayMetrics,
    Metrics,
    OptionsPublic,
    PositionMetrics,
    SurfaceMetrics,
    TopItem,
)
from platform_api.analytics.tables import AnalyticsDaily, AnalyticsDay, AnalyticsItemDaily
from platform_api.catalogue.tables import ContentItem, WorkoutPlan

Breakdown = Literal["day", "arm", "position", "surface"]


@dataclass(frozen=True)
class Filters:
    start: date | None = None
    end: date | None = None
    arm: str | None = None
    surface: str | None = None

    def where(self, table: type[AnalyticsDaily] | type[AnalyticsItemDaily]) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.start is not None:
            conditions.append(table.day >= self.start)
        if self.end is not None:
            conditions.append(table.day <= self.end)
        if self.arm is not None:
            conditions.append(table.arm == self.arm)
        if self.surface is not None:
            conditions.append(table.surface == self.surface)
        return conditions


_KEYS: dict[Breakdown, tuple[Any, ...]] = {
    "day": (AnalyticsDaily.day,),
    "arm": (AnalyticsDaily.model_version, AnalyticsDaily.arm),
    "position": (AnalyticsDaily.position,),
    "surface": (AnalyticsDaily.surface,),
}
_ROWS: dict[Breakdown, type[Metrics]] = {
    "day": DayMetrics,
    "arm": ArmMetrics,
    "position": PositionMetrics,
    "surface": SurfaceMetrics,
}
_SUMS = (
    func.sum(AnalyticsDaily.impressions),
    func.sum(AnalyticsDaily.clicks),
    func.sum(AnalyticsDaily.conversions),
)


def breakdown(session: Session, filters: Filters, by: Breakdown) -> list[Any]:
    """Metrics per day, (model version, arm), position or surface, in that key's order."""
    keys = _KEYS[by]
    query = select(*keys, *_SUMS).where(*filters.where(AnalyticsDaily)).group_by(*keys).order_by(*keys)
    row_type = _ROWS[by]
    out = []
    for row in session.execute(query):
        values = dict(zip((k.key for k in keys), row[: len(keys)], strict=True))
        out.append(row_type.of(int(row[-3]), int(row[-2]), int(row[-1]), **values))
    return out


def totals(session: Session, filters: Filters) -> tuple[int, int, int]:
    """(impressions, clicks, conversions) of the period."""
    row = session.execute(select(*_SUMS).where(*filters.where(AnalyticsDaily))).one()
    return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0)


def top_items(session: Session, filters: Filters, *, limit: int) -> list[TopItem]:
    """The most clicked items (then the most shown), with their titles from the catalogue."""
    t = AnalyticsItemDaily
    clicks = func.sum(t.clicks)
    impressions = func.sum(t.impressions)
    rows = session.execute(
        select(t.item_id, impressions, clicks, func.sum(t.conversions))
        .where(*filters.where(t))
        .group_by(t.item_id)
        .order_by(clicks.desc(), impressions.desc(), t.item_id)
        .limit(limit)
    ).all()
    ids = [r[0] for r in rows]
    names: dict[str, tuple[str, str]] = {
        pid: (title, "plan")
        for pid, title in session.execute(select(WorkoutPlan.id, WorkoutPlan.title).where(WorkoutPlan.id.in_(ids)))
    }
    names |= {
        cid: (title, kind)
        for cid, title, kind in session.execute(
            select(ContentItem.id, ContentItem.title, ContentItem.kind).where(ContentItem.id.in_(ids))
        )
    }
    out = []
    for item_id, shown, clicked, converted in rows:
        title, kind = names.get(item_id, (None, None))
        out.append(
            TopItem(
                item_id=item_id,
                title=title,
                kind=kind,
                impressions=int(shown),
                clicks=int(clicked),
                ctr=int(clicked) / int(shown) if shown else None,
                conversions=int(converted),
            )
        )
    return out


def coverage(session: Session, filters: Filters) -> CoveragePublic:
    """Distinct items shown, over the period and per day, against the catalogue's size."""
    t = AnalyticsItemDaily
    shown = [*filters.where(t), t.impressions > 0]
    served = session.scalar(select(func.count(distinct(t.item_id))).where(*shown)) or 0
    days = [AnalyticsDay.day >= filters.start] if filters.start else []
    days += [AnalyticsDay.day <= filters.end] if filters.end else []
    catalogue = session.scalar(select(func.max(AnalyticsDay.catalogue_items)).where(*days)) or 0
    per_day = session.execute(
        select(t.day, func.count(distinct(t.item_id)), func.max(AnalyticsDay.catalogue_items))
        .join(AnalyticsDay, AnalyticsDay.day == t.day)
        .where(*shown)
        .group_by(t.day)
        .order_by(t.day)
    ).all()
    data = [
        CoverageDay(day=day, items_served=n, catalogue_items=size, coverage=n / size if size else None)
        for day, n, size in per_day
    ]
    return CoveragePublic(
        items_served=served,
        catalogue_items=catalogue,
        coverage=served / catalogue if catalogue else None,
        data=data,
        count=len(data),
    )


def options(session: Session) -> OptionsPublic:
    """What the filters can choose from: the aggregated days, model versions, arms and surfaces."""
    t = AnalyticsDaily
    first, last = session.execute(select(func.min(t.day), func.max(t.day))).one()
    return OptionsPublic(
        first_day=first,
        last_day=last,
        model_versions=list(session.scalars(select(t.model_version).distinct().order_by(t.model_version))),
        arms=list(session.scalars(select(t.arm).distinct().order_by(t.arm))),
        surfaces=list(session.scalars(select(t.surface).distinct().order_by(t.surface))),
    )
