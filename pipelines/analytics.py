"""The product dashboard's aggregates: the event log's impressions, clicks and completions → analytics tables.

Each day is rewritten whole (delete, then one INSERT … SELECT per table, in one transaction), so a re-run
replaces what it wrote before and never counts twice. The aggregation runs in the database.

Attribution, by the day an item was shown (UTC):
- a click counts for an impression of the same request, item and user, made before the end of the day
  after it was shown (CLICK_DAYS);
- a clicked impression converts when the user completes a workout of that item (a `workout.completed`
  event, or the app's `complete` feedback) after the click and before the end of the CONVERSION_DAYS-th
  day after it was shown.

Without `since`, the days rewritten are those the events received since the last run can change: from
the earliest such event's day back CONVERSION_DAYS (a late completion converts a click days before).
"""

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any

from sqlalchemy import (
    Date,
    Integer,
    Select,
    String,
    and_,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from pipelines.config import PipelineSettings
from pipelines.locks import exclusive
from platform_api.analytics.tables import CONVERSION_DAYS, AnalyticsDaily, AnalyticsDay, AnalyticsItemDaily
from platform_api.catalogue.tables import ContentItem, WorkoutPlan
from platform_api.db import UTCDateTime
from platform_api.events.tables import EventLog
from platform_api.runtime import open_platform

IMPRESSION, CLICK = "recommendation.impression", "recommendation.clicked"
COMPLETED, CONVERTED = "workout.completed", "recommendation.converted"
RELEVANT = (IMPRESSION, CLICK, COMPLETED, CONVERTED)
CLICK_DAYS = 1
# Events committed while the last run read may carry a received_at a little before it started.
RECEIVED_MARGIN = timedelta(minutes=5)
LOCK_WAIT_S = 120.0


@dataclass(frozen=True)
class AnalyticsReport:
    since: date | None  # None: nothing to aggregate
    until: date | None
    days: int
    impressions: int
    clicks: int
    conversions: int
    seconds: float


class AnalyticsBusy(RuntimeError):
    """Another aggregation held the lock for longer than LOCK_WAIT_S."""


def aggregate_analytics(settings: PipelineSettings, since: date | None = None) -> AnalyticsReport:
    """Rewrite the aggregates of the days from `since` (default: what changed since the last run) to today (UTC)."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    platform = open_platform(settings.platform())
    try:
        with exclusive(platform.engine, "analytics", lock_dir=settings.data_dir / "locks", wait_s=LOCK_WAIT_S) as held:
            if not held:
                raise AnalyticsBusy("another analytics aggregation is running")
            with platform.sessions() as session:
                first = since if since is not None else _changed_since(session)
                catalogue = _catalogue_size(session)
            until = now.date()
            if first is None or first > until:
                return AnalyticsReport(None, None, 0, 0, 0, 0, round(time.perf_counter() - started, 3))
            totals = [0, 0, 0]
            day = first
            while day <= until:
                with platform.sessions() as session:
                    counts = _rewrite_day(session, day, catalogue=catalogue, now=now)
                    session.commit()
                totals = [a + b for a, b in zip(totals, counts, strict=True)]
                day += timedelta(days=1)
    finally:
        platform.close()
    return AnalyticsReport(
        since=first,
        until=until,
        days=(until - first).days + 1,
        impressions=totals[0],
        clicks=totals[1],
        conversions=totals[2],
        seconds=round(time.perf_counter() - started, 3),
    )


def _changed_since(session: Session) -> date | None:
    """The first day the events received since the last run can change (all of the log on the first run),
    never before the first impression (older workouts alone change nothing)."""
    first_shown = _first_day(session, select(func.min(EventLog.occurred_at)).where(EventLog.event_type == IMPRESSION))
    if first_shown is None:
        return None
    last = session.scalar(select(func.max(AnalyticsDay.aggregated_at)))
    if last is None:
        return first_shown
    changed = _first_day(
        session,
        select(func.min(EventLog.occurred_at)).where(
            EventLog.event_type.in_(RELEVANT), EventLog.received_at >= last - RECEIVED_MARGIN
        ),
    )
    if changed is None:
        return None
    return max(first_shown, changed - timedelta(days=CONVERSION_DAYS))


def _first_day(session: Session, query: Select[Any]) -> date | None:
    earliest = session.scalar(query)
    if isinstance(earliest, str):  # SQLite hands an aggregate of a timestamp back as text
        earliest = datetime.fromisoformat(earliest)
    return None if earliest is None else earliest.date()


def _catalogue_size(session: Session) -> int:
    plans = session.scalar(select(func.count()).select_from(WorkoutPlan)) or 0
    content = session.scalar(select(func.count()).where(ContentItem.status == "ready")) or 0
    return plans + content


def _rewrite_day(session: Session, day: date, *, catalogue: int, now: datetime) -> tuple[int, int, int]:
    """Replace the day's rows; returns its (impressions, clicks, conversions)."""
    start = datetime.combine(day, clock.min, tzinfo=UTC)
    end = start + timedelta(days=1)
    props = EventLog.properties
    request_id = props["request_id"].as_string().label("request_id")
    # The day's impressions and the clicks that may be theirs, grouped by (request, user, item): one pass
    # whatever the planner knows (a join of the two, planned without statistics on a fresh log, was quadratic).
    shown = select(
        request_id,
        EventLog.user_id,
        EventLog.item_id,
        props["position"].as_integer().label("position"),
        props["model_version"].as_string().label("model_version"),
        props["arm"].as_string().label("arm"),
        props["surface"].as_string().label("surface"),
        cast(null(), UTCDateTime()).label("clicked_at"),
    ).where(EventLog.event_type == IMPRESSION, EventLog.occurred_at >= start, EventLog.occurred_at < end)
    clicks = select(
        request_id,
        EventLog.user_id,
        EventLog.item_id,
        cast(null(), Integer),
        cast(null(), String),
        cast(null(), String),
        cast(null(), String),
        EventLog.occurred_at,
    ).where(
        EventLog.event_type == CLICK,
        EventLog.occurred_at >= start,
        EventLog.occurred_at < end + timedelta(days=CLICK_DAYS),
    )
    both = union_all(shown, clicks).subquery("both")
    slate = (
        select(
            both.c.user_id,
            both.c.item_id,
            func.max(both.c.position).label("position"),
            func.max(both.c.model_version).label("model_version"),
            func.max(both.c.arm).label("arm"),
            func.max(both.c.surface).label("surface"),
            func.min(both.c.clicked_at).label("clicked_at"),
        )
        .group_by(both.c.request_id, both.c.user_id, both.c.item_id)
        .having(func.count(both.c.position) > 0)  # shown that day, not only clicked
        .subquery("slate")
    )
    done = aliased(EventLog)
    completed = exists().where(
        done.user_id == slate.c.user_id,
        done.item_id == slate.c.item_id,
        or_(
            done.event_type == COMPLETED,
            and_(done.event_type == CONVERTED, done.properties["action"].as_string() == "complete"),
        ),
        done.occurred_at >= slate.c.clicked_at,
        done.occurred_at < end + timedelta(days=CONVERSION_DAYS),
    )
    clicked = slate.c.clicked_at.is_not(None)
    seen = select(
        slate,
        case((clicked, 1), else_=0).label("clicked"),
        case((and_(clicked, completed), 1), else_=0).label("converted"),
    ).subquery("seen")
    counts = (func.count(), func.sum(seen.c.clicked), func.sum(seen.c.converted))
    for table in (AnalyticsDaily, AnalyticsItemDaily, AnalyticsDay):
        session.execute(delete(table).where(table.day == day))
    daily_keys = (seen.c.model_version, seen.c.arm, seen.c.surface, seen.c.position)
    session.execute(
        insert(AnalyticsDaily).from_select(
            ["day", "model_version", "arm", "surface", "position", "impressions", "clicks", "conversions"],
            select(literal(day, Date), *daily_keys, *counts).group_by(*daily_keys),
        )
    )
    item_keys = (seen.c.item_id, seen.c.arm, seen.c.surface)
    session.execute(
        insert(AnalyticsItemDaily).from_select(
            ["day", "item_id", "arm", "surface", "impressions", "clicks", "conversions"],
            select(literal(day, Date), *item_keys, *counts).group_by(*item_keys),
        )
    )
    session.add(AnalyticsDay(day=day, catalogue_items=catalogue, aggregated_at=now))
    row = session.execute(
        select(
            func.coalesce(func.sum(AnalyticsDaily.impressions), 0),
            func.coalesce(func.sum(AnalyticsDaily.clicks), 0),
            func.coalesce(func.sum(AnalyticsDaily.conversions), 0),
        ).where(AnalyticsDaily.day == day)
    ).one()
    return int(row[0]), int(row[1]), int(row[2])
