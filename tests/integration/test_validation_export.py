"""Event log → validated offline event store, quarantine and per-run reports.

On SQLite the store is parquet partitions under the data folder; on PostgreSQL it is
tables in the same database (and no parquet file is written).
"""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sqlalchemy import insert, select

from pipelines.config import PipelineSettings
from pipelines.event_export import event_store, export_events, read_watermark
from pipelines.validation.stores import EventStore
from platform_api.catalogue.service import list_items, seed_catalogue
from platform_api.events.ingest import ingest
from platform_api.events.tables import EventLog
from platform_api.runtime import Platform, open_platform

NOW = datetime.now(UTC).replace(microsecond=0)  # the events' clock; exports read the real one (now())
DAY1, DAY2 = NOW - timedelta(days=2), NOW - timedelta(days=1)


def now() -> datetime:
    """The export's clock: the catalogue's content.ready events are stamped when a test seeds it,
    which in a long run is past NOW by more than the contract's 10 minutes of future skew."""
    return datetime.now(UTC)


def ev(event_type: str, user_id: str | None, at: datetime, item_id: str | None = None, **props: Any) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "user_id": user_id,
        "item_id": item_id,
        "occurred_at": at.isoformat(),
        "properties": props,
    }


def signup(user_id: str, at: datetime) -> dict:
    return ev("user.created", user_id, at, goal="endurance", fitness_level="beginner")


def workout(user_id: str, at: datetime, minutes: float = 30.0) -> dict:
    return ev(
        "workout.completed",
        user_id,
        at,
        session_id=f"s-{uuid.uuid4().hex[:6]}",
        duration_min=minutes,
        total_sets=6,
        total_reps=60,
        calories=210.5,
        rpe=7,
    )


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[tuple[PipelineSettings, Platform, list[str]]]:
    settings = PipelineSettings(FITREC_DATA_DIR=tmp_path / "data", DATABASE_URL=db_url)
    platform = open_platform(settings.platform())
    with platform.sessions() as session:
        seed_catalogue(session)
        items = [item.item_id for item in list_items(session)]
    yield settings, platform, items
    platform.close()


@pytest.fixture
def store(env: tuple[PipelineSettings, Platform, list[str]]) -> Iterator[EventStore]:
    opened = event_store(env[0])
    yield opened
    opened.close()


def _ingest(platform: Platform, events: list[dict]) -> None:
    with platform.sessions() as session:
        result = ingest(session, raw=events)
        session.commit()
    assert result.stored == len(events) and not result.rejected


def _stored_rows(store: EventStore) -> int:
    return sum(store.counts().values())


def test_export_validates_partitions_quarantines_and_reports(
    env: tuple[PipelineSettings, Platform, list[str]], store: EventStore
) -> None:
    settings, platform, items = env
    good = [
        signup("u1", DAY1),
        signup("u2", DAY1),
        workout("u1", DAY1, 30),
        workout("u1", DAY2, 45.5),
        ev("content.viewed", "u2", DAY2, item_id=items[0], seconds=90),
        ev("health_metric.synced", "u1", DAY2, day=DAY2.date().isoformat(), steps=9000, resting_hr=57.5),
    ]
    # The API accepts this one (its contract has no memory of users)...
    ghost = ev("content.viewed", "ghost", DAY2, item_id=items[0], seconds=5)
    _ingest(platform, good + [ghost])
    # ...and these bypassed it (an older producer writing the log directly): the API refuses both.
    direct = workout("u2", DAY2) | {"received_at": datetime.now(UTC)}
    direct["properties"]["rpe"] = 15
    direct["occurred_at"] = DAY2
    ancient = workout("u1", NOW - timedelta(days=25 * 365))
    ancient |= {"occurred_at": datetime.fromisoformat(ancient["occurred_at"]), "received_at": datetime.now(UTC)}
    with platform.sessions() as session:
        session.execute(insert(EventLog).values(direct))
        session.execute(insert(EventLog).values(ancient))
        session.commit()
        content_ready = len(
            session.scalars(select(EventLog.event_id).where(EventLog.event_type == "content.ready")).all()
        )

    first = export_events(settings, now=now())
    total = len(good) + 3 + content_ready
    assert (first.received, first.stored, first.quarantined, first.duplicates) == (total, total - 3, 3, 0)
    postgres = settings.database_url is not None and settings.database_url.startswith("postgresql")
    assert first.backend == ("postgresql" if postgres else "parquet")

    workouts = store.read_events("workout.completed")
    assert sorted(workouts["duration_min"].to_list()) == [30.0, 45.5]
    assert workouts.schema["total_sets"] == pl.Int64 and workouts.schema["occurred_at"] == pl.Datetime("us", "UTC")
    assert set(workouts["date"].to_list()) == {DAY1.date(), DAY2.date()}
    if postgres:
        assert not list(settings.offline_dir.rglob("*.parquet"))
    else:
        dates = {p.name for p in (settings.offline_dir / "events" / "event_type=workout.completed").iterdir()}
        assert dates == {f"date={DAY1.date()}", f"date={DAY2.date()}"}
    health = store.read_events("health_metric.synced").row(0, named=True)
    assert (health["steps"], health["resting_hr"], health["day"]) == (9000, 57.5, DAY2.date())
    assert store.read_events("content.ready").height == content_ready

    quarantine = store.read_quarantine()
    reasons = {row["event_id"]: row["reasons"] for row in quarantine.iter_rows(named=True)}
    assert reasons == {
        ghost["event_id"]: ["user_id.known"],
        ancient["event_id"]: ["occurred_at.too_old"],
        direct["event_id"]: ["rpe.range"],
    }
    assert json.loads(quarantine.filter(pl.col("event_id") == direct["event_id"])["raw"][0])["properties"]["rpe"] == 15

    run_dir = first.report_path.parent
    summary = json.loads((run_dir / "report.json").read_text())
    assert summary["rows_failing"] == {"occurred_at.too_old": 1, "rpe.range": 1, "user_id.known": 1}
    assert "holds" in first.report_path.read_text()
    page = (run_dir / "workout.completed-0000.html").read_text()
    assert "rpe" in page and "expect" in page.lower()  # a GE data docs page for the suite that failed

    # Re-running exports nothing twice: what it re-reads is recognised as already handled.
    rows = _stored_rows(store)
    assert rows == total - 3
    again = export_events(settings, now=now())
    assert (again.stored, again.quarantined, again.duplicates) == (0, 0, again.received)
    assert _stored_rows(store) == rows and read_watermark(settings) == first.watermark

    # New events only: u2's sign-up was exported by the first run, so u2 is known now.
    _ingest(platform, [workout("u2", NOW - timedelta(hours=1))])
    later = export_events(settings, now=now() + timedelta(minutes=1), overlap=timedelta(0))
    # The bound is inclusive: the event at the watermark is read again and recognised.
    assert (later.received, later.stored, later.quarantined, later.duplicates) == (2, 1, 0, 1)
    assert later.watermark is not None and first.watermark is not None and later.watermark > first.watermark

    # A backfill from the beginning finds everything already handled.
    backfill = export_events(settings, since=NOW - timedelta(days=30), now=now() + timedelta(minutes=1))
    assert backfill.received == total + 1 and backfill.duplicates == backfill.received
    assert _stored_rows(store) == rows + 1


def test_fitbit_import_exports_as_health_events(
    env: tuple[PipelineSettings, Platform, list[str]], store: EventStore
) -> None:
    from platform_api.health.fitbit import FITBIT_DIR, import_fitbit

    settings, platform, _ = env
    ids = pl.read_csv(FITBIT_DIR / "dailyActivity_merged.csv", infer_schema=False)["Id"].unique().to_list()
    with platform.sessions() as session:
        imported = import_fitbit(session, folder=FITBIT_DIR, now=NOW)
    # The import registers its people (user.created), and 2016 is within the default age limit.
    report = export_events(settings, now=now())
    assert report.quarantined == 0
    assert store.read_events("user.created")["user_id"].n_unique() == len(ids)
    health = store.read_events("health_metric.synced")
    assert health.height == imported.changed > 800
    assert health["user_id"].n_unique() == len(ids)
    assert health.filter(pl.col("steps") > 0).height > 800
