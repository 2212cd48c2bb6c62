"""Feature build: event log + catalogue → parquet feature tables → Feast registry → online store."""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy import Engine

from features.push import PUSH_LOOKBACK, PushReport, push_events
from features.schema import ENGAGEMENT_WEIGHTS, FEATURE_EPOCH, TABLES
from features.sources import table_path
from features.store import apply_definitions, open_store
from features.transforms import EVENT_SCHEMA, build_tables, items_frame
from pipelines.config import PipelineSettings
from platform_api.catalogue.service import list_items
from platform_api.events.tables import EventLog
from platform_api.runtime import open_platform

# Only these events feed features; the rest of the log is not read.
FEATURE_EVENT_TYPES = (
    "user.created",
    "workout.completed",
    "health_metric.synced",
    "recommendation.impression",
    *ENGAGEMENT_WEIGHTS,
)
# Views whose rows are stamped at FEATURE_EPOCH: incremental windows never see new rows of theirs.
STATIC_VIEWS = ("item_catalogue",)
STEPS = ("read events", "transform", "write parquet", "apply definitions", "materialize")

# progress(step, steps_done, steps_total)
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class FeatureBuildReport:
    events: int
    rows_per_table: dict[str, int]
    seconds: float
    materialized_until: datetime


def read_events(
    engine: Engine,
    *,
    since: datetime | None = None,
    user_ids: Iterable[str] | None = None,
    event_types: Iterable[str] = FEATURE_EVENT_TYPES,
) -> pl.DataFrame:
    """Feature-relevant events of the log as the transforms' events frame (properties as JSON text)."""
    t = EventLog.__table__.c
    properties = sa.cast(t.properties, sa.Text).label("properties")
    stmt = sa.select(t.event_id, t.event_type, t.user_id, t.item_id, t.occurred_at, properties).where(
        t.event_type.in_(list(event_types))
    )
    if since is not None:
        stmt = stmt.where(t.occurred_at >= since)
    if user_ids is not None:
        stmt = stmt.where(t.user_id.in_(list(user_ids)))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    if not rows:
        return pl.DataFrame(schema=EVENT_SCHEMA)
    columns = list(zip(*rows, strict=True))
    return pl.DataFrame(dict(zip(EVENT_SCHEMA, columns, strict=True)), schema=EVENT_SCHEMA)


def read_items(engine: Engine) -> pl.DataFrame:
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        return items_frame(item.as_row() for item in list_items(session))


def write_tables(tables: dict[str, pl.DataFrame], data_dir: Path) -> None:
    """Each table to its parquet file, replaced atomically so readers never see half a file."""
    for name, frame in tables.items():
        path = Path(data_dir) / table_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".parquet.tmp")
        frame.write_parquet(tmp)
        tmp.replace(path)


def build_features(
    settings: PipelineSettings,
    *,
    progress: Progress | None = None,
    as_of: datetime | None = None,
    full: bool = False,
    registry_url: str | None = None,
) -> FeatureBuildReport:
    """Rebuild every feature table from the event log and load the new rows into the online store.

    `as_of` (default now) bounds the events used; `full` rematerializes every
    view from the beginning instead of only what is newer than the last run.
    """
    started = time.perf_counter()
    as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
    step = _stepper(progress)

    step(0)
    platform = open_platform(settings.platform())
    try:
        events = read_events(platform.engine)
        items = read_items(platform.engine)
    finally:
        platform.close()

    step(1)
    tables = build_tables(events, items, as_of=as_of)

    step(2)
    write_tables(tables, settings.data_dir)

    step(3)
    store = open_store(
        data_dir=settings.data_dir,
        redis_url=settings.redis_url,
        registry_url=registry_url,
        project=settings.feast_project,
    )
    apply_definitions(store)

    step(4)
    until = max(datetime.now(UTC), as_of)
    materialize(store, end_date=until, full=full)
    step(5)
    return FeatureBuildReport(
        events=events.height,
        rows_per_table={name: frame.height for name, frame in tables.items()},
        seconds=time.perf_counter() - started,
        materialized_until=until,
    )


def materialize(store: Any, *, end_date: datetime, full: bool = False) -> None:
    """Incremental materialization of the windowed views; the static catalogue is always reloaded."""
    dynamic = [name for name in TABLES if name not in STATIC_VIEWS]
    if full:
        store.materialize(start_date=FEATURE_EPOCH, end_date=end_date, feature_views=dynamic)
    else:
        store.materialize_incremental(end_date=end_date, feature_views=dynamic)
    store.materialize(start_date=FEATURE_EPOCH, end_date=end_date, feature_views=list(STATIC_VIEWS))


def _stepper(progress: Progress | None) -> Callable[[int], None]:
    def step(done: int) -> None:
        if progress is not None:
            progress(STEPS[done] if done < len(STEPS) else "done", done, len(STEPS))

    return step


def refresh_users(
    settings: PipelineSettings,
    user_ids: Iterable[str],
    *,
    store: Any | None = None,
    engine: Engine | None = None,
    as_of: datetime | None = None,
) -> PushReport:
    """Push fresh online rows for these users, recomputed from their recent events in the log.

    Pass a long-lived `store`/`engine` when calling often (a consumer of new
    events); otherwise both are opened for this call.
    """
    as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
    store = store or open_store(
        data_dir=settings.data_dir, redis_url=settings.redis_url, project=settings.feast_project
    )
    own_engine = engine is None
    if engine is None:
        engine = open_platform(settings.platform(), migrate=False).engine
    try:
        events = read_events(engine, since=as_of - PUSH_LOOKBACK, user_ids=list(user_ids))
    finally:
        if own_engine:
            engine.dispose()
    return push_events(store, events, as_of=as_of)
