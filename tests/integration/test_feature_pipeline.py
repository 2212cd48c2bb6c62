"""Features from validated events only, on both offline backends.

Embedded: parquet event store, parquet feature tables, Feast's file offline store.
Production: the same data in PostgreSQL tables and Feast's PostgreSQL offline store
(point-in-time joins run in the database). One code path, chosen by DATABASE_URL.
"""

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import polars as pl
import polars.testing
import pytest
import sqlalchemy as sa

from features import pg_offline_store
from features.freshness import feature_freshness
from features.offline import read_source
from features.retrieval import historical_features, online_features
from features.schema import ENTITY_KEYS, TABLES, TIMESTAMP
from features.services import RANKING_FEATURES
from features.store import offline_backend, open_store
from features.transforms import build_tables, events_frame, items_frame
from pipelines.build_features import FeatureBuildReport, build_features, offline_url, read_validated_events
from pipelines.config import PipelineSettings
from pipelines.event_export import event_store
from platform_api.catalogue.service import Item, list_items, seed_catalogue
from platform_api.events.ingest import ingest
from platform_api.events.tables import EventLog
from platform_api.runtime import open_platform
from training.datasets import LABEL_EVENT_TYPES

BASE = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=5)
AS_OF = BASE + timedelta(days=5, hours=1)  # one hour into today: every event is before it
PLAN = "plan-build-strength-beginner-bodyweight"


def _event(event_type: str, user_id: str, at: datetime, item_id: str | None = None, **properties: object) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "user_id": user_id,
        "item_id": item_id,
        "occurred_at": at.isoformat(),
        "properties": properties,
    }


def _workout(user_id: str, at: datetime, minutes: float, rpe: float) -> dict:
    return _event(
        "workout.completed",
        user_id,
        at,
        PLAN,
        session_id=uuid.uuid4().hex,
        duration_min=minutes,
        total_sets=10,
        total_reps=100,
        calories=300,
        rpe=rpe,
    )


def _good(guide: str) -> list[dict]:
    day = lambda n, h: BASE + timedelta(days=n, hours=h)  # noqa: E731
    profile = {"goal": "build_strength", "fitness_level": "beginner", "equipment": ["body only"]}
    return [
        _event("user.created", "u1", day(0, 8), **profile, session_minutes=40),
        _event("user.created", "u2", day(0, 9), goal="mobility", fitness_level="expert", session_minutes=20),
        _workout("u1", day(1, 9), 30, 6),
        _workout("u1", day(2, 9), 40, 8),
        _event("health_metric.synced", "u1", day(2, 7), day=day(2, 0).date().isoformat(), steps=9000, resting_hr=60),
        _event("recommendation.impression", "u1", day(3, 10), guide, request_id="r1", position=0, model_version="1"),
        _event("recommendation.impression", "u1", day(3, 10), PLAN, request_id="r1", position=1, model_version="1"),
        _event(
            "recommendation.clicked",
            "u1",
            day(
                3,
                10,
            ),
            PLAN,
            request_id="r1",
            position=1,
        ),
    ]


def _bad(guide: str) -> tuple[list[dict], list[dict]]:
    """(events the API accepts but a suite refuses, events only a direct write to the log could store)."""
    day = lambda n, h: BASE + timedelta(days=n, hours=h)  # noqa: E731
    # The API knows no users, so a click by someone who never signed up goes through...
    ghost = _event("recommendation.clicked", "ghost", day(3, 11), guide, request_id="r1", position=0)
    # ...and an older producer writing the log directly stored an impossible exertion and heart rate.
    impossible = _workout("u1", day(3, 9), 50, 15)
    racing = _event("health_metric.synced", "u1", day(3, 7), day=day(3, 0).date().isoformat(), resting_hr=400)
    return [ghost], [impossible, racing]


@dataclass
class Built:
    settings: PipelineSettings
    report: FeatureBuildReport
    good: list[dict]
    bad: list[dict]
    items: list[Item]
    guide: str

    def store(self):  # type: ignore[no-untyped-def]
        return open_store(
            data_dir=self.settings.data_dir, project=self.settings.feast_project, offline_url=offline_url(self.settings)
        )


def _build(data_dir: Path, database_url: str | None) -> Built:
    settings = PipelineSettings(FITREC_DATA_DIR=data_dir, DATABASE_URL=database_url, REDIS_URL=None)
    platform = open_platform(settings.platform())
    with platform.sessions() as session:
        seed_catalogue(session)
        items = list_items(session)
        guide = next(i.item_id for i in items if i.item_type == "exercise_guide" and i.category == "stretching")
        good = _good(guide)
        accepted, direct = _bad(guide)
        result = ingest(session, raw=good + accepted)
        assert result.stored == len(good) + len(accepted) and not result.rejected
        for raw in direct:
            row = {**raw, "occurred_at": datetime.fromisoformat(raw["occurred_at"]), "received_at": datetime.now(UTC)}
            session.execute(sa.insert(EventLog).values(row))
        session.commit()
    platform.close()
    return Built(settings, build_features(settings, as_of=AS_OF), good, accepted + direct, items, guide)


@pytest.fixture(scope="module")
def module_pg_url(pg_admin: sa.Engine) -> Iterator[str]:
    name = f"fitrec_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield pg_admin.url.set(database=name).render_as_string(hide_password=False)
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return _build(tmp_path_factory.mktemp("embedded"), None)


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory, module_pg_url: str) -> Built:
    return _build(tmp_path_factory.mktemp("production"), module_pg_url)


@pytest.fixture(params=["embedded", "production"])
def built(request: pytest.FixtureRequest) -> Built:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def _stored_tables(built: Built) -> dict[str, pl.DataFrame]:
    """Every feature table as the offline store holds it (parquet or PostgreSQL), in a stable order."""
    store = built.store()
    tables = {}
    for name, (entity, columns) in TABLES.items():
        key = ENTITY_KEYS[entity]
        source = store.get_feature_view(name).batch_source
        tables[name] = read_source(store, source, [key, TIMESTAMP, *columns]).sort(key, TIMESTAMP)
    return tables


def _expected_tables(built: Built, raw: list[dict]) -> dict[str, pl.DataFrame]:
    items = items_frame(item.as_row() for item in built.items)
    tables = build_tables(events_frame(raw), items, as_of=AS_OF)
    return {
        name: frame.select(ENTITY_KEYS[TABLES[name][0]], TIMESTAMP, *TABLES[name][1]).sort(
            ENTITY_KEYS[TABLES[name][0]], TIMESTAMP
        )
        for name, frame in tables.items()
    }


def test_bad_events_are_quarantined_and_change_no_feature(built: Built) -> None:
    export = built.report.export
    assert export is not None and export.quarantined == 3
    assert export.received == export.stored + export.quarantined + export.duplicates
    assert export.report_path.exists()
    store = event_store(built.settings)
    try:
        reasons = {r["event_id"]: r["reasons"] for r in store.read_quarantine().iter_rows(named=True)}
    finally:
        store.close()
    ghost, impossible, racing = built.bad
    assert reasons == {
        ghost["event_id"]: ["user_id.known"],
        impossible["event_id"]: ["rpe.range"],
        racing["event_id"]: ["resting_hr.range"],
    }
    assert built.report.events == len(built.good)

    # Every stored feature table is exactly what the good events alone give...
    stored = _stored_tables(built)
    for name, expected in _expected_tables(built, built.good).items():
        assert stored[name].height == built.report.rows_per_table[name]
        pl.testing.assert_frame_equal(stored[name], expected, check_dtypes=False)
    # ...which is not what the log as a whole would have given (the test could fail).
    with_bad = _expected_tables(built, built.good + built.bad)
    assert not with_bad["user_workout_stats"].equals(stored["user_workout_stats"])
    assert not with_bad["user_health"].equals(stored["user_health"])
    assert not with_bad["item_stats"].equals(stored["item_stats"])

    # The good events are counted: two workouts of RPE 6 and 8, one click in the impressions' request.
    row = online_features(built.store(), "u1", [PLAN]).iloc[0]
    assert row["workouts_7d"] == 2 and row["minutes_7d"] == 70 and row["avg_rpe_28d"] == 7
    assert row["resting_hr_7d_avg"] == 60
    assert row["clicks_28d"] == 1 and row["item_clicks_28d"] == 1


def test_training_labels_come_from_validated_events(built: Built) -> None:
    labels = read_validated_events(built.settings, LABEL_EVENT_TYPES)
    ghost = built.bad[0]["event_id"]
    assert ghost not in labels["event_id"].to_list()
    assert sorted(labels["event_type"].to_list()) == [
        "recommendation.clicked",
        "recommendation.impression",
        "recommendation.impression",
        "workout.completed",
        "workout.completed",
    ]


def test_production_keeps_the_offline_data_in_postgresql(production: Built, module_pg_url: str) -> None:
    store = production.store()
    assert offline_backend(store) == "postgres"
    assert type(store.get_feature_view("user_health").batch_source).__name__ == "PostgreSQLSource"
    assert production.report.offline_store == "postgres"
    assert production.report.export is not None and production.report.export.backend == "postgresql"
    # Nothing offline lands in the data folder: the events and the feature tables are tables.
    assert not list((production.settings.data_dir / "offline").rglob("*.parquet"))
    engine = sa.create_engine(module_pg_url)
    with engine.connect() as conn:
        features = dict(
            conn.execute(
                sa.text("SELECT table_name, 0 FROM information_schema.tables WHERE table_schema = 'fitrec_features'")
            ).all()
        )
        workouts = conn.execute(sa.text("SELECT count(*) FROM fitrec_events.events_workout_completed")).scalar()
        for table in TABLES:
            rows = conn.execute(sa.text(f'SELECT count(*) FROM fitrec_features."{table}"')).scalar()
            assert rows == production.report.rows_per_table[table], table
    engine.dispose()
    assert set(TABLES) <= set(features)
    assert workouts == 2  # the workout with RPE 15 is in the quarantine, not here


def test_both_backends_give_the_same_features(
    embedded: Built, production: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database's rows arrive in batches of this many (54 rows: 8 batches).
    monkeypatch.setattr(pg_offline_store, "FETCH_ROWS", 7)
    users, items = ["u1", "u2", "nobody"], [PLAN, embedded.guide, "no-such-item"]
    stamps = [BASE + timedelta(hours=h) for h in (-1, 9, 33, 58, 84, 110)]
    entity_df = pd.DataFrame(
        [{"user_id": u, "item_id": i, "event_timestamp": t} for u in users for i in items for t in stamps]
    )
    files, postgres = embedded.store(), production.store()
    via_files = historical_features(files, entity_df, engine="feast")
    in_database = historical_features(postgres, entity_df, engine="feast")
    pd.testing.assert_frame_equal(via_files, in_database)
    pd.testing.assert_frame_equal(in_database, historical_features(postgres, entity_df, engine="polars"))
    assert in_database["workouts_28d"].max() == 2  # not trivially all fills
    assert list(in_database.columns) == [*entity_df.columns, *RANKING_FEATURES]

    pd.testing.assert_frame_equal(online_features(files, "u1", items), online_features(postgres, "u1", items))
    now = production.report.materialized_until + timedelta(minutes=1)
    assert feature_freshness(postgres, now=now) == pytest.approx(feature_freshness(files, now=now), abs=120)
