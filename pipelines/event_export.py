"""Event log → validated offline event store, quarantine and a report per run.

The store is partitioned parquet under the data folder (embedded) or tables in
the platform's PostgreSQL (production), chosen by the database URL
(`pipelines.validation.stores.open_event_store`).

Incremental by `received_at`: the store keeps a watermark, the newest `received_at`
exported. Each run re-reads a short overlap before it, since a transaction that
stamped its rows earlier may commit after a run has read past them; rows already
exported or quarantined are recognised by `event_id` and counted as duplicates, so
re-running exports nothing twice.
"""

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipelines.config import PipelineSettings
from pipelines.validation import ConservationError, ValidationConfig, validate_events
from pipelines.validation.report import render_suite_page, write_index
from pipelines.validation.stores import EventStore, open_event_store
from pipelines.validation.suites import INTRODUCES
from platform_api.catalogue.service import list_items
from platform_api.events.read import DEFAULT_CHUNK, iter_events
from platform_api.runtime import open_platform

# Longer than any ingestion transaction stays open between stamping received_at and committing.
DEFAULT_OVERLAP = timedelta(minutes=2)


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
    backend: str  # where valid events went: "parquet" or "postgresql"


def event_store(settings: PipelineSettings) -> EventStore:
    """The offline event store of these settings (close it after use)."""
    return open_event_store(
        database_url=settings.database_url,
        offline_dir=settings.offline_dir,
        quarantine_dir=settings.data_dir / "quarantine",
    )


def read_watermark(settings: PipelineSettings) -> datetime | None:
    store = event_store(settings)
    try:
        return store.read_watermark()
    finally:
        store.close()


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

    Valid rows go to the offline event store (`offline/events/event_type=<t>/date=<d>/`
    or PostgreSQL `fitrec_events.events_<type>`), failing rows to its quarantine, the
    run's report to `validation/<run_id>/`. Raises ConservationError if
    received != stored + quarantined + duplicates.
    """
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    run_id = f"{now:%Y%m%dT%H%M%S}Z-{uuid.uuid4().hex[:6]}"
    run_dir = settings.data_dir / "validation" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)

    store = event_store(settings)
    backend = store.backend
    platform = open_platform(settings.platform())
    try:
        watermark = store.read_watermark()
        start = since if since is not None else (watermark - overlap if watermark else None)
        seen = store.handled_ids(received_since=start)
        users = store.exported_ids("user.created", "user_id")
        with platform.sessions() as session:
            items = {item.item_id for item in list_items(session)}
        items |= store.exported_ids("content.ready", "item_id")

        totals = {"received": 0, "stored": 0, "quarantined": 0, "duplicates": 0}
        chunks: list[dict[str, object]] = []
        pages: list[str] = []
        newest = watermark
        log = iter_events(platform.engine, received_since=start, chunk_size=chunk_size)
        for index, frame in enumerate(log):
            outcome = validate_events(
                frame, known_users=users, known_items=items, now=now, seen_ids=seen, config=config
            )
            part = f"{run_id}-{index:04d}"
            written, held = store.write(outcome.by_type, outcome.quarantined, part=part, run_id=run_id)
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

        if totals["received"] != totals["stored"] + totals["quarantined"] + totals["duplicates"]:
            raise ConservationError(f"run {run_id}: {totals}")
        if newest is not None and newest != watermark:
            store.save_watermark(newest, run_id=run_id, summary=totals)
    finally:
        platform.close()
        store.close()

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
        "backend": backend,
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
        backend=backend,
    )
