"""Feature build: validated events + catalogue → offline feature tables → Feast registry → online store.

Features come from validated events only: the build first exports what the
event log received since the last export (Great Expectations suites, failing
rows quarantined), then reads the feature-relevant types back from the offline
event store. Where things live follows the platform database: parquet files
and Feast's file offline store on the embedded default, PostgreSQL tables and
Feast's PostgreSQL offline store when DATABASE_URL is PostgreSQL.
"""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import Engine

from features.offline import write_feature_tables
from features.postgres import is_postgres
from features.push import PUSH_LOOKBACK, PushReport, push_events
from features.schema import FEATURE_EPOCH, FEATURE_EVENT_TYPES, TABLES
from features.store import apply_definitions, open_store
from features.transforms import EVENT_SCHEMA, build_tables, items_frame
from pipelines.config import PipelineSettings
from pipelines.event_export import ExportReport, event_store, export_events
from platform_api.catalogue.service import list_items
from platform_api.events.read import conforming, read_events
from platform_api.runtime import open_platform

__all__ = [
    "FEATURE_EVENT_TYPES",
    "FeatureBuildReport",
    "build_features",
    "feature_store",
    "materialize",
    "offline_url",
    "read_validated_events",
    "refresh_users",
    "write_tables",
]

# Views whose rows are stamped at FEATURE_EPOCH: incremental windows never see new rows of theirs.
STATIC_VIEWS = ("item_catalogue",)
STEPS = ("export and validate", "read events", "transform", "write tables", "apply definitions", "materialize")

# progress(step, steps_done, steps_total)
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class FeatureBuildReport:
    events: int  # validated feature events the tables were built from
    rows_per_table: dict[str, int]
    seconds: float
    materialized_until: datetime
    export: ExportReport | None  # this build's export run (None: built from what was already exported)
    offline_store: str  # "file" or "postgres"

    @property
    def quarantined(self) -> int:
        return self.export.quarantined if self.export else 0


def offline_url(settings: PipelineSettings) -> str | None:
    """The URL the offline stores live in: the platform database when it is PostgreSQL, else none (files)."""
    return settings.database_url if is_postgres(settings.database_url) else None


def feature_store(settings: PipelineSettings, *, registry_url: str | None = None) -> Any:
    """The Feast store of these settings: offline store, online store and project as the build uses them."""
    return open_store(
        data_dir=settings.data_dir,
        redis_url=settings.redis_url,
        registry_url=registry_url,
        project=settings.feast_project,
        offline_url=offline_url(settings),
    )


def read_validated_events(settings: PipelineSettings, event_types: Iterable[str] = FEATURE_EVENT_TYPES) -> pl.DataFrame:
    """Validated events of these types from the offline event store, as the transforms' events frame."""
    store = event_store(settings)
    try:
        return store.read_log(event_types).select(list(EVENT_SCHEMA))
    finally:
        store.close()


def read_items(engine: Engine) -> pl.DataFrame:
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        return items_frame(item.as_row() for item in list_items(session))


def write_tables(tables: dict[str, pl.DataFrame], data_dir: Path, *, url: str | None = None) -> None:
    """Each table to its parquet file (or its PostgreSQL table when `url` is PostgreSQL), replaced atomically."""
    write_feature_tables(tables, data_dir=data_dir, offline_url=url)


def build_features(
    settings: PipelineSettings,
    *,
    progress: Progress | None = None,
    as_of: datetime | None = None,
    full: bool = False,
    registry_url: str | None = None,
    export: bool = True,
) -> FeatureBuildReport:
    """Validate new events, rebuild every feature table from the validated ones, load new rows online.

    `as_of` (default now) bounds the events used; `full` rematerializes every
    view from the beginning instead of only what is newer than the last run;
    `export=False` skips the export and builds from what is already validated.
    """
    started = time.perf_counter()
    as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
    step = _stepper(progress)
    url = offline_url(settings)

    step(0)
    # Validation judges "in the future" against the real clock, never against a past as_of.
    exported = export_events(settings) if export else None

    step(1)
    events = read_validated_events(settings)
    platform = open_platform(settings.platform())
    try:
        items = read_items(platform.engine)
    finally:
        platform.close()

    step(2)
    tables = build_tables(events, items, as_of=as_of)

    step(3)
    write_tables(tables, settings.data_dir, url=url)

    step(4)
    store = feature_store(settings, registry_url=registry_url)
    apply_definitions(store)

    step(5)
    until = max(datetime.now(UTC), as_of)
    materialize(store, end_date=until, full=full)
    step(6)
    return FeatureBuildReport(
        events=events.height,
        rows_per_table={name: frame.height for name, frame in tables.items()},
        seconds=time.perf_counter() - started,
        materialized_until=until,
        export=exported,
        offline_store="postgres" if url else "file",
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

    The serving app does this continuously for new events (serving.feature_push);
    this is the same push for named users, from a script or a job. Pass a
    long-lived `store`/`engine` when calling often.
    """
    as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
    store = store or feature_store(settings)
    own_engine = engine is None
    if engine is None:
        engine = open_platform(settings.platform(), migrate=False).engine
    try:
        events = read_events(
            engine, since=as_of - PUSH_LOOKBACK, user_ids=list(user_ids), event_types=FEATURE_EVENT_TYPES
        )
    finally:
        if own_engine:
            engine.dispose()
    return push_events(store, conforming(events).select(list(EVENT_SCHEMA)), as_of=as_of)
