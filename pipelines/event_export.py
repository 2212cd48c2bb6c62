"""Event log → validated offline event store (partitioned parquet), quarantine and a report per run.

Incremental by `received_at`: a watermark in `offline/events/_watermark.json` records
the newest `received_at` exported. Each run re-reads a short overlap before it, since
a transaction that stamped its rows earlier may commit after a run has read past them;
rows already exported or quarantined are recognised by `event_id` and counted as
duplicates, so re-running exports nothing twice.
"""

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from sqlalchemy import Engine, Text, cast, select

from pipelines.config import PipelineSettings
from pipelines.validation import ConservationError, ValidationConfig, validate_events
from pipelines.validation.report import render_suite_page, write_index
from pipelines.validation.stores import (
    events_root,
    exported_ids,
    handled_ids,
    write_events,
    write_quarantine,
)
from pipelines.validation.suites import INTRODUCES
from platform_api.catalogue.service import list_items
from platform_api.events.tables import EventLog
from platform_api.runtime import open_platform

# Longer than any ingestion transaction stays open between stamping received_at and committing.
DEFAULT_OVERLAP = timedelta(minutes=2)
DEFAULT_CHUNK = 200_000
LOG_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "event_id": pl.String,
    "event_type": pl.String,
    "user_id": pl.String,
    "item_id": pl.String,
    "occurred_at": pl.Datetime("us", "UTC"),
    "received_at": pl.Datetime("us", "UTC"),
    "properties": pl.String,
}


@dataclass(frozen=True)
class ExportReport:
    received: int
    stored: int
    quarantined: int
    duplicates: int
    seconds: float
    report_path: Path  # the run's index.html (report.json and GE data docs pages beside it)
    run_id: str
    watermark: datetime | None


def _watermark_path(settings: PipelineSettings) -> Path:
    return events_root(settings.offline_dir) / "_watermark.json"


def read_watermark(settings: PipelineSettings) -> datetime | None:
    path = _watermark_path(settings)
    if not path.exists():
        return None
    return datetime.fromisoformat(json.loads(path.read_text())["received_at"])


def _save_watermark(settings: PipelineSettings, watermark: datetime, run_id: str) -> None:
    path = _watermark_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"received_at": watermark.isoformat(), "run_id": run_id}))
    tmp.replace(path)


def read_event_log(engine: Engine, *, since: datetime | None, chunk_size: int) -> Iterator[pl.DataFrame]:
    """The event log in `received_at` order, `chunk_size` rows at a time (streamed, not loaded whole)."""
    stmt = select(
        EventLog.event_id,
        EventLog.event_type,
        EventLog.user_id,
        EventLog.item_id,
        EventLog.occurred_at,
        EventLog.received_at,
        cast(EventLog.properties, Text).label("properties"),
    ).order_by(EventLog.received_at, EventLog.event_id)
    if since is not None:
        stmt = stmt.where(EventLog.received_at >= since)
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=chunk_size).execute(stmt)
        for rows in result.partitions():
            yield pl.DataFrame(rows, schema=LOG_SCHEMA, orient="row")


def export_events(
    settings: PipelineSettings,
    *,
    since: datetime | None = None,
    now: datetime | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    overlap: timedelta = DEFAULT_OVERLAP,
    config: ValidationConfig | None = None,
) -> ExportReport:
    """Validate the events received since the last run (or since `since`) and write them out.

    Valid rows go to `offline/events/event_type=<t>/date=<d>/`, failing rows to
    `quarantine/events/`, the run's report to `validation/<run_id>/`. Raises
    ConservationError if received != stored + quarantined + duplicates.
    """
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    run_id = f"{now:%Y%m%dT%H%M%S}Z-{uuid.uuid4().hex[:6]}"
    quarantine_dir = settings.data_dir / "quarantine"
    run_dir = settings.data_dir / "validation" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)

    watermark = read_watermark(settings)
    start = since if since is not None else (watermark - overlap if watermark else None)
    seen = handled_ids(settings.offline_dir, quarantine_dir, received_since=start)
    users = exported_ids(settings.offline_dir, "user.created", "user_id")
    platform = open_platform(settings.platform())
    try:
        with platform.sessions() as session:
            items = {item.item_id for item in list_items(session)}
        items |= exported_ids(settings.offline_dir, "content.ready", "item_id")

        totals = {"received": 0, "stored": 0, "quarantined": 0, "duplicates": 0}
        chunks: list[dict[str, object]] = []
        pages: list[str] = []
        newest = watermark
        for index, frame in enumerate(read_event_log(platform.engine, since=start, chunk_size=chunk_size)):
            outcome = validate_events(
                frame, known_users=users, known_items=items, now=now, seen_ids=seen, config=config
            )
            part = f"{run_id}-{index:04d}"
            written = write_events(settings.offline_dir, outcome.by_type, part=part)
            held = write_quarantine(quarantine_dir, outcome.quarantined, part=part, run_id=run_id)
            if written != outcome.report["stored"] or held != outcome.report["quarantined"]:
                raise ConservationError(
                    f"chunk {index}: wrote {written} valid and {held} quarantined rows, "
                    f"validated {outcome.report['stored']} and {outcome.report['quarantined']}"
                )
            for key in totals:
                totals[key] += int(outcome.report[key])
            seen.update(frame["event_id"].to_list())
            for event_type, column in INTRODUCES.items():
                if event_type in outcome.by_type:
                    target = users if column == "user_id" else items
                    target.update(outcome.by_type[event_type][column].drop_nulls().to_list())
            latest = frame["received_at"].max()
            if isinstance(latest, datetime) and (newest is None or latest > newest):
                newest = latest
            # Data docs for every suite of the first chunk and for every failing suite after it.
            for suite, result in outcome.results.items():
                if index == 0 or not result.success:
                    page = f"{suite}-{index:04d}.html"
                    if render_suite_page(result, run_dir / page):
                        pages.append(page)
            chunks.append({k: v for k, v in outcome.report.items() if k != "checks"})
    finally:
        platform.close()

    if totals["received"] != totals["stored"] + totals["quarantined"] + totals["duplicates"]:
        raise ConservationError(f"run {run_id}: {totals}")
    if newest is not None and newest != watermark:
        _save_watermark(settings, newest, run_id)
    seconds = time.perf_counter() - started
    by_type: dict[str, dict[str, int]] = {}
    failing: dict[str, int] = {}
    for chunk in chunks:
        for event_type, counts in chunk["by_type"].items():  # type: ignore[attr-defined]
            row = by_type.setdefault(event_type, {"stored": 0, "quarantined": 0})
            for key in row:
                row[key] += counts[key]
        for name, count in chunk["rows_failing"].items():  # type: ignore[attr-defined]
            failing[name] = failing.get(name, 0) + count
    summary = {
        "run_id": run_id,
        "now": now.isoformat(),
        "since": start.isoformat() if start else None,
        "watermark": newest.isoformat() if newest else None,
        **totals,
        "seconds": round(seconds, 3),
        "by_type": by_type,
        "rows_failing": failing,
        "chunks": chunks,
    }
    report_path = write_index(run_dir, summary, pages)
    return ExportReport(
        received=totals["received"],
        stored=totals["stored"],
        quarantined=totals["quarantined"],
        duplicates=totals["duplicates"],
        seconds=seconds,
        report_path=report_path,
        run_id=run_id,
        watermark=newest,
    )
