"""Fresh rows between batch builds: recompute from recent events (or new items), push to the online store.

The batch build stamps a user's rows once a day; a completed workout, a click
or a profile change should change the next uncached recommendation within
seconds. The caller hands over the affected users' events of the last
PUSH_LOOKBACK (the event log is not a concern of `features`); the same
transforms as the batch build compute their rows as of now, and the newest row
per user is pushed. Newly published items get their catalogue row the same way
(`push_items`, from the caller's item rows).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl

from features.schema import FEATURE_EPOCH, HISTORY_DAYS, PROFILE_EVENT_TYPES, RECENT_ACTIONS, TIMESTAMP
from features.sources import push_source_name
from features.transforms import (
    events_frame,
    item_catalogue,
    latest_rows,
    user_engagement,
    user_health,
    user_profile,
    user_recent_items,
    user_workout_stats,
)

if TYPE_CHECKING:
    from feast import FeatureStore

# Every window and cap of the user tables fits in this much history.
PUSH_LOOKBACK = timedelta(days=HISTORY_DAYS + 1)
# Event types whose arrival changes a pushed user table (callers may filter on them).
PUSH_TRIGGERS = frozenset(
    {
        "workout.completed",
        "health_metric.synced",
        "recommendation.impression",
        "recommendation.clicked",
        "plan.enrolled",
        "workout.started",
        "content.viewed",
        *PROFILE_EVENT_TYPES,
        *RECENT_ACTIONS,
    }
)
# The event of a newly published item (its item_id): its catalogue row is pushed (`push_items`).
ITEM_TRIGGER = "content.ready"
# The user tables push_events refreshes, in push order.
USER_PUSHED_TABLES = ("user_profile", "user_workout_stats", "user_health", "user_engagement", "user_recent_items")


@dataclass(frozen=True)
class PushReport:
    users: int
    rows: dict[str, int]
    as_of: datetime


def push_events(
    store: "FeatureStore",
    events: pl.DataFrame | Iterable[Mapping[str, Any]],
    *,
    items: pl.DataFrame | None = None,
    as_of: datetime | None = None,
) -> PushReport:
    """Recompute the user rows of everyone in `events` as of `as_of` (default now) and push them online.

    `events` must hold each affected user's events of at least PUSH_LOOKBACK
    before `as_of` (fewer would undercount windows). `items` (item_id, category,
    level) defaults to the item catalogue already in the online store.
    """
    as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
    frame = events if isinstance(events, pl.DataFrame) else events_frame(events)
    frame = frame.filter(pl.col("user_id").is_not_null() & (pl.col("occurred_at") >= as_of - PUSH_LOOKBACK))
    users = frame.get_column("user_id").unique().to_list()
    if not users:
        return PushReport(users=0, rows={}, as_of=as_of)
    if items is None:
        items = catalogue_from_store(store, frame.get_column("item_id").drop_nulls().unique().to_list())
    # A profile row holds from its event on, so the newest is restamped as of now like the rest.
    profiles = latest_rows(user_profile(frame, as_of=as_of), "user_id").filter(pl.col(TIMESTAMP) > FEATURE_EPOCH)
    tables = {
        "user_profile": profiles.with_columns(pl.lit(as_of).cast(profiles.schema[TIMESTAMP]).alias(TIMESTAMP)),
        "user_workout_stats": user_workout_stats(frame, items, as_of=as_of),
        "user_health": user_health(frame, as_of=as_of),
        "user_engagement": user_engagement(frame, items, as_of=as_of),
        "user_recent_items": user_recent_items(frame, as_of=as_of),
    }
    rows: dict[str, int] = {}
    for table in USER_PUSHED_TABLES:
        # A table whose newest row is older than now did not change (e.g. recent items without new actions).
        latest = latest_rows(tables[table], "user_id").filter(pl.col(TIMESTAMP) == as_of)
        rows[table] = _push(store, table, latest)
    return PushReport(users=len(users), rows=rows, as_of=as_of)


def push_items(store: "FeatureStore", items: pl.DataFrame) -> int:
    """Push the catalogue rows of these items (the items frame of features.transforms) online; rows pushed.

    They are stamped FEATURE_EPOCH like the batch build's, so the next build's
    materialization still replaces them (a newer push would shadow it).
    """
    return _push(store, "item_catalogue", item_catalogue(items)) if items.height else 0


def _push(store: "FeatureStore", table: str, rows: pl.DataFrame) -> int:
    from feast.data_source import PushMode

    if rows.height:
        store.push(push_source_name(table), rows.to_pandas(), to=PushMode.ONLINE)
    return rows.height


def catalogue_from_store(store: "FeatureStore", item_ids: list[str]) -> pl.DataFrame:
    """item_id, category, level of the given items, read from the online item_catalogue view."""
    schema = {"item_id": pl.String(), "category": pl.String(), "level": pl.String()}
    if not item_ids:
        return pl.DataFrame(schema=schema)
    found = store.get_online_features(
        features=["item_catalogue:item_category", "item_catalogue:item_level"],
        entity_rows={"item_id": item_ids},
    ).to_dict()
    return pl.DataFrame(
        {"item_id": found["item_id"], "category": found["item_category"], "level": found["item_level"]},
        schema=schema,
    )
