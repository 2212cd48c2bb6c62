"""Online push within seconds: an event posted to the running app changes the user's online features.

The serving app's FeaturePusher reads new trigger events from the log every
push_interval_s and pushes the users' recomputed rows; the features the next
uncached recommendation reads show them. On the embedded default and on
PostgreSQL + Redis.
"""

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from features.retrieval import online_features
from features.store import open_store
from pipelines.build_features import build_features
from pipelines.config import PipelineSettings
from platform_api.auth.api_keys import create_api_key
from platform_api.catalogue.service import seed_catalogue
from platform_api.events.ingest import ingest
from platform_api.events.tables import EventLog
from platform_api.runtime import open_platform
from serving.app import create_app
from serving.config import ServingSettings
from serving.feature_push import FeaturePusher

PLAN = "plan-build-strength-beginner-bodyweight"
DEADLINE_S = 10.0


def _workout(user_id: str, at: datetime, minutes: float, rpe: float = 6) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "workout.completed",
        "user_id": user_id,
        "item_id": PLAN,
        "occurred_at": at.isoformat(),
        "properties": {
            "session_id": uuid.uuid4().hex,
            "duration_min": minutes,
            "total_sets": 8,
            "total_reps": 80,
            "calories": 250,
            "rpe": rpe,
        },
    }


def _signup(user_id: str, at: datetime) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "user.created",
        "user_id": user_id,
        "item_id": None,
        "occurred_at": at.isoformat(),
        "properties": {"goal": "build_strength", "fitness_level": "beginner"},
    }


@dataclass
class Folder:
    settings: PipelineSettings
    prefix: str

    def store(self):  # type: ignore[no-untyped-def]
        return open_store(
            data_dir=self.settings.data_dir, redis_url=self.settings.redis_url, project=self.settings.feast_project
        )

    def serving(self, **overrides: object) -> ServingSettings:
        return ServingSettings(
            FITREC_DATA_DIR=self.settings.data_dir,
            DATABASE_URL=self.settings.database_url,
            REDIS_URL=self.settings.redis_url,
            FITREC_FEAST_PROJECT=self.settings.feast_project,
            cache_prefix=self.prefix,
            model_refresh_s=0,
            **overrides,
        )

    def ingest(self, events: list[dict]) -> None:
        platform = open_platform(self.settings.platform())
        with platform.sessions() as session:
            assert ingest(session, raw=events).stored == len(events)
            session.commit()
        platform.close()


@pytest.fixture(params=["embedded", "production"])
def folder(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Folder]:
    """A small built data folder: u1 signed up a week ago and worked out two days ago."""
    if request.param == "embedded":
        database_url, redis_url, prefix = None, None, "fitrec:"
    else:
        database_url = request.getfixturevalue("pg_url")
        redis_url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
    project = f"fitrec_test_{uuid.uuid4().hex[:10]}"
    settings = PipelineSettings(
        FITREC_DATA_DIR=tmp_path, DATABASE_URL=database_url, REDIS_URL=redis_url, FITREC_FEAST_PROJECT=project
    )
    platform = open_platform(settings.platform())
    with platform.sessions() as session:
        seed_catalogue(session)
        session.commit()
    platform.close()
    built = Folder(settings, prefix)
    now = datetime.now(UTC)
    built.ingest([_signup("u1", now - timedelta(days=7)), _workout("u1", now - timedelta(days=2), 30)])
    build_features(settings)
    yield built
    if redis_url:
        built.store().teardown()


def test_a_posted_workout_reaches_the_online_features_within_seconds(folder: Folder) -> None:
    platform = open_platform(folder.settings.platform())
    with platform.sessions() as session:
        _, secret = create_api_key(session, name="app backend", scopes=["events:write"], created_by=None)
        session.commit()
    platform.close()

    app = create_app(folder.serving(push_interval_s=0.5))
    with TestClient(app) as client:
        state = app.state.serving
        assert state.pusher is not None and state.pusher.interval_s == 0.5
        # What the recommender reads on a cache miss (the app's own OnlineFeatureReader).
        features = state.recommender.fetch_features
        before = features("u1", [PLAN]).iloc[0]
        assert before["workouts_7d"] == 1 and before["minutes_7d"] == 30

        event = _workout("u1", datetime.now(UTC) - timedelta(seconds=5), 45, rpe=8)
        posted = client.post("/v1/events", json={"events": [event]}, headers={"X-API-Key": secret})
        assert posted.status_code == 202 and posted.json()["stored"] == 1
        sent = time.perf_counter()
        while features("u1", [PLAN]).iloc[0]["workouts_7d"] != 2:
            assert time.perf_counter() - sent < DEADLINE_S, (
                f"not pushed within {DEADLINE_S}s: {state.pusher.last_error}"
            )
            time.sleep(0.05)
        latency = time.perf_counter() - sent
        after = features("u1", [PLAN]).iloc[0]
        assert after["minutes_7d"] == 75 and after["avg_rpe_28d"] == 7 and after["days_since_last_workout"] == 0
        print(f"push latency {latency:.2f}s (push_interval_s=0.5)")
    # A store opened elsewhere (another serving process) sees the pushed row too; the pusher stopped with the app.
    assert online_features(folder.store(), "u1", [PLAN]).iloc[0]["workouts_7d"] == 2
    assert state.pusher._thread is None


def test_the_pusher_pushes_each_new_event_once_and_skips_what_the_contract_refuses(folder: Folder) -> None:
    platform = open_platform(folder.settings.platform())
    store = folder.store()
    try:
        # Received before the pusher started: the batch build's business, never pushed (the overlap stops there).
        folder.ingest([_signup("u2", datetime.now(UTC) - timedelta(days=1))])
        folder.ingest([_workout("u2", datetime.now(UTC) - timedelta(hours=3), 20)])
        pusher = FeaturePusher(engine=platform.engine, store=store, interval_s=0, overlap=timedelta(minutes=5))
        assert pusher.run_once().new_events == 0
        assert online_features(store, "u2", [PLAN]).iloc[0]["workouts_7d"] == 0

        folder.ingest([_workout("u2", datetime.now(UTC) - timedelta(minutes=1), 25)])
        tick = pusher.run_once()
        assert tick.new_events == 1 and tick.report is not None and tick.report.users == 1
        # Every event of the lookback counts, including the one before the pusher started.
        row = online_features(store, "u2", [PLAN]).iloc[0]
        assert row["workouts_7d"] == 2 and row["minutes_7d"] == 45
        assert pusher.run_once().new_events == 0  # the overlap re-read recognises what was pushed

        # An older producer wrote an impossible workout straight into the log: it triggers, but never counts.
        bad = _workout("u2", datetime.now(UTC) - timedelta(seconds=30), 90, rpe=15)
        row_values = {
            **bad,
            "occurred_at": datetime.fromisoformat(bad["occurred_at"]),
            "received_at": datetime.now(UTC),
        }
        with platform.sessions() as session:
            session.execute(sa.insert(EventLog).values(row_values))
            session.commit()
        tick = pusher.run_once()
        assert tick.new_events == 1 and tick.report is not None
        row = online_features(store, "u2", [PLAN]).iloc[0]
        assert row["workouts_7d"] == 2 and row["minutes_7d"] == 45
    finally:
        platform.close()


def test_push_interval_zero_starts_no_pusher(folder: Folder) -> None:
    app = create_app(folder.serving(push_interval_s=0))
    with TestClient(app):
        assert app.state.serving.pusher is None
