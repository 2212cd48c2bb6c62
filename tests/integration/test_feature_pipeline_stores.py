"""The offline event store contract, held against both implementations: parquet files and PostgreSQL tables."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import polars.testing
import pytest

from pipelines.validation import events_frame, validate_events
from pipelines.validation.stores import (
    EVENT_LOG_SCHEMA,
    QUARANTINE_COLUMNS,
    EventStore,
    ParquetEventStore,
    PostgresEventStore,
    event_schema,
    open_event_store,
)
from platform_api.db import make_engine

NOW = datetime.now(UTC).replace(microsecond=0)
DAY1, DAY2 = NOW - timedelta(days=2), NOW - timedelta(days=1)


def _ev(event_type: str, user_id: str, at: datetime, item_id: str | None = None, **props: object) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "user_id": user_id,
        "item_id": item_id,
        "occurred_at": at.isoformat(),
        "received_at": (at + timedelta(minutes=5)).isoformat(),
        "properties": props,
    }


def _workout(user_id: str, at: datetime, rpe: float = 7) -> dict:
    return _ev(
        "workout.completed",
        user_id,
        at,
        session_id="s",
        duration_min=30.5,
        total_sets=6,
        total_reps=60,
        calories=200,
        rpe=rpe,
        category='strength, "heavy"\nday',  # text CSV must quote
    )


CHUNKS = [
    [
        _ev("user.created", "u1", DAY1, goal="endurance", equipment=["body only", 'a "band"'], session_minutes=20),
        _ev("user.created", "u2", DAY1, equipment=[]),
        _workout("u1", DAY1),
        _workout("u1", DAY2, rpe=15),  # quarantined: rpe.range
        _ev("health_metric.synced", "u1", DAY2, day=DAY2.date().isoformat(), steps=9000, resting_hr=57.5),
    ],
    [
        _workout("u2", DAY2),
        _ev("content.viewed", "ghost", DAY2, item_id="i1", seconds=3),  # quarantined: user_id.known
        _ev("content.viewed", "u2", DAY2, item_id="i1", seconds=0),
    ],
]


@pytest.fixture(params=["parquet", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "parquet":
        opened: EventStore = open_event_store(
            database_url=None, offline_dir=tmp_path / "offline", quarantine_dir=tmp_path / "quarantine"
        )
        assert isinstance(opened, ParquetEventStore)
    else:
        opened = open_event_store(
            database_url=request.getfixturevalue("pg_url"), offline_dir=tmp_path / "x", quarantine_dir=tmp_path / "y"
        )
        assert isinstance(opened, PostgresEventStore)
    yield opened
    opened.close()
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()  # PostgreSQL writes no files


def _fill(store: EventStore) -> None:
    users: set[str] = set()
    for index, chunk in enumerate(CHUNKS):
        outcome = validate_events(events_frame(chunk), known_users=users, known_items={"i1"}, now=NOW)
        written, held = store.write(outcome.by_type, outcome.quarantined, part=f"run-{index}", run_id="run")
        assert (written, held) == (outcome.report["stored"], outcome.report["quarantined"])
        users |= store.exported_ids("user.created", "user_id")


def test_stores_keep_what_was_validated(store: EventStore) -> None:
    assert store.read_watermark() is None and store.counts() == {} and store.handled_ids() == set()
    assert store.read_events("workout.completed").schema == pl.Schema(event_schema("workout.completed"))
    _fill(store)

    assert store.counts() == {"user.created": 2, "workout.completed": 2, "health_metric.synced": 1, "content.viewed": 1}
    workouts = store.read_events("workout.completed").sort("occurred_at")
    assert workouts.schema == pl.Schema(event_schema("workout.completed"))
    assert workouts["rpe"].to_list() == [7.0, 7.0] and workouts["total_sets"].to_list() == [6, 6]
    assert workouts["category"][0] == 'strength, "heavy"\nday'
    assert workouts["date"].to_list() == [DAY1.date(), DAY2.date()]
    assert workouts["occurred_at"].to_list() == [DAY1, DAY2]
    people = store.read_events("user.created").sort("user_id")
    assert people["equipment"].to_list() == [["body only", 'a "band"'], []]
    assert people["goal"].to_list() == ["endurance", None]
    assert people["session_minutes"].to_list() == [20, 30]  # the contract's default filled in
    health = store.read_events("health_metric.synced").row(0, named=True)
    assert (health["steps"], health["resting_hr"], health["day"], health["active_minutes"]) == (
        9000,
        57.5,
        DAY2.date(),
        None,
    )

    log = store.read_log(["workout.completed", "content.viewed", "payment.completed"])
    assert log.schema == pl.Schema(EVENT_LOG_SCHEMA) and log.height == 3
    assert store.read_log(["workout.completed"], user_ids=["u2"])["user_id"].to_list() == ["u2"]

    quarantine = store.read_quarantine()
    assert quarantine.schema == pl.Schema(QUARANTINE_COLUMNS)
    assert sorted(map(tuple, quarantine["reasons"].to_list())) == [("rpe.range",), ("user_id.known",)]
    assert set(quarantine["run_id"].to_list()) == {"run"}

    every = {e["event_id"] for chunk in CHUNKS for e in chunk}
    assert store.handled_ids() == every
    late = {e["event_id"] for chunk in CHUNKS for e in chunk if e["occurred_at"] == DAY2.isoformat()}
    assert store.handled_ids(received_since=DAY2) == late
    assert store.exported_ids("content.viewed", "item_id") == {"i1"}

    store.save_watermark(DAY1, run_id="a", summary={"received": 1})
    store.save_watermark(DAY2, run_id="b", summary={"received": 2})
    assert store.read_watermark() == DAY2


def test_both_stores_read_back_the_same_frames(tmp_path: Path, pg_url: str) -> None:
    files = ParquetEventStore(tmp_path / "offline", tmp_path / "quarantine")
    database = PostgresEventStore(make_engine(pg_url), own_engine=True)
    try:
        for store in (files, database):
            _fill(store)
        for event_type in ("user.created", "workout.completed", "health_metric.synced", "content.viewed"):
            polars.testing.assert_frame_equal(
                files.read_events(event_type).sort("event_id"), database.read_events(event_type).sort("event_id")
            )
        types = ["user.created", "workout.completed", "content.viewed"]
        polars.testing.assert_frame_equal(
            files.read_log(types).sort("event_id"), database.read_log(types).sort("event_id")
        )
        polars.testing.assert_frame_equal(
            files.read_quarantine().sort("event_id"), database.read_quarantine().sort("event_id")
        )
    finally:
        database.close()
