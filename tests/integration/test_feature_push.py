"""Online push within seconds: an event posted to the running app changes the user's online features.

The worker's FeaturePusher reads new trigger events from the log every
push_interval_s and pushes the users' recomputed rows; the features the next
uncached recommendation reads show them. Profiles (sign-up, profile changes),
recent items per user and newly published items are pushed the same way, and
the pusher tells its callbacks which users and items changed. On the embedded
default and on PostgreSQL + Redis.
"""

import io
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from support import running_worker

from features.offline import read_source
from features.retrieval import online_features
from features.schema import ITEM_CATALOGUE, RECENT_ITEMS_REF, TIMESTAMP, USER_PROFILE, parse_recent_items
from features.store import open_store
from features.transforms import items_frame
from pipelines.build_features import build_features, feature_store
from pipelines.config import PipelineSettings
from pipelines.feature_pusher import FeaturePusher
from platform_api.auth.api_keys import create_api_key
from platform_api.auth.schemas import Profile, UserUpdate
from platform_api.auth.service import new_user, update_profile
from platform_api.auth.tables import User
from platform_api.catalogue.service import list_items, seed_catalogue
from platform_api.catalogue.tables import ContentItem
from platform_api.content.schemas import ContentCreate, ContentUpdate
from platform_api.content.service import attach_media, create_content, update_content
from platform_api.events.ingest import ingest
from platform_api.events.tables import EventLog
from platform_api.runtime import open_platform
from platform_api.storage.factory import open_object_store
from serving.app import create_app
from serving.config import ServingSettings

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


def _event(event_type: str, user_id: str, item_id: str | None, at: datetime, **properties: object) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "user_id": user_id,
        "item_id": item_id,
        "occurred_at": at.isoformat(),
        "properties": properties,
    }


MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 40  # sniffed as video/mp4


def _online(store, refs: list[str], key: str, value: str) -> dict:  # type: ignore[no-untyped-def]
    found = store.get_online_features(features=refs, entity_rows={key: [value]}).to_dict()
    return {ref.split(":", 1)[1]: found[ref.split(":", 1)[1]][0] for ref in refs}


def _profile(store, user_id: str) -> dict:  # type: ignore[no-untyped-def]
    return _online(store, [f"user_profile:{c}" for c in USER_PROFILE], "user_id", user_id)


def _recent(store, user_id: str) -> dict:  # type: ignore[no-untyped-def]
    return parse_recent_items(_online(store, [RECENT_ITEMS_REF], "user_id", user_id)["recent_items"])


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

    def worker(self, **overrides: Any) -> Any:
        return running_worker(
            self.settings.data_dir,
            database_url=self.settings.database_url,
            redis_url=self.settings.redis_url,
            feast_project=self.settings.feast_project,
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

    app = create_app(folder.serving())
    with TestClient(app) as client, folder.worker(push_interval_s=0.5) as worker:
        state = app.state.serving
        pusher = worker.pusher
        assert pusher is not None and pusher.interval_s == 0.5
        # The app's own store, as the recommender reads it on a cache miss.
        assert state.store is not None

        def features(user_id: str, item_ids: list[str]):  # type: ignore[no-untyped-def]
            return online_features(state.store, user_id, item_ids)

        before = features("u1", [PLAN]).iloc[0]
        assert before["workouts_7d"] == 1 and before["minutes_7d"] == 30

        event = _workout("u1", datetime.now(UTC) - timedelta(seconds=5), 45, rpe=8)
        posted = client.post("/v1/events", json={"events": [event]}, headers={"X-API-Key": secret})
        assert posted.status_code == 202 and posted.json()["stored"] == 1
        sent = time.perf_counter()
        while features("u1", [PLAN]).iloc[0]["workouts_7d"] != 2:
            assert time.perf_counter() - sent < DEADLINE_S, f"not pushed within {DEADLINE_S}s: {pusher.last_error}"
            time.sleep(0.05)
        latency = time.perf_counter() - sent
        after = features("u1", [PLAN]).iloc[0]
        assert after["minutes_7d"] == 75 and after["avg_rpe_28d"] == 7 and after["days_since_last_workout"] == 0
        print(f"push latency {latency:.2f}s (push_interval_s=0.5)")
    # A store opened elsewhere (another serving process) sees the pushed row too; the pusher stopped with the worker.
    assert online_features(folder.store(), "u1", [PLAN]).iloc[0]["workouts_7d"] == 2
    assert pusher._thread is None


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


def test_events_received_while_no_worker_ran_are_pushed_when_one_starts(folder: Folder) -> None:
    """The pusher starts at the last materialization, not at the worker's start."""
    folder.ingest([_workout("u1", datetime.now(UTC) - timedelta(minutes=10), 40)])
    store = folder.store()
    assert online_features(store, "u1", [PLAN]).iloc[0]["workouts_7d"] == 1  # built before that workout
    with folder.worker(push_interval_s=0.2) as worker:
        deadline = time.monotonic() + DEADLINE_S
        while online_features(store, "u1", [PLAN]).iloc[0]["workouts_7d"] != 2:
            assert time.monotonic() < deadline, f"not pushed: {worker.pusher.last_error}"
            time.sleep(0.1)
    assert online_features(store, "u1", [PLAN]).iloc[0]["minutes_7d"] == 70


def test_push_interval_zero_starts_no_pusher(folder: Folder) -> None:
    with folder.worker(push_interval_s=0) as worker:
        assert worker.leader and worker.pusher is None


def test_profiles_reach_the_online_store_at_sign_up_and_on_every_change(folder: Folder) -> None:
    platform = open_platform(folder.settings.platform())
    store = folder.store()
    told: list[set[str]] = []
    try:
        pusher = FeaturePusher(engine=platform.engine, store=store, interval_s=0, on_users=told.append)
        profile = Profile(
            goal="mobility", fitness_level="intermediate", equipment=["dumbbell", "bands"], session_minutes=20
        )
        with platform.sessions() as session:
            user_id = new_user(session, email=None, password_hash=None, profile=profile).id
            session.commit()
        tick = pusher.run_once()
        assert tick.report is not None and tick.report.rows["user_profile"] == 1 and told == [{user_id}]
        assert _profile(store, user_id) == {
            "goal": "mobility",
            "fitness_level": "intermediate",
            "equipment": "bands,dumbbell",
            "session_minutes": 20,
        }

        with platform.sessions() as session:
            user = session.get(User, user_id)
            assert user is not None
            update_profile(session, user=user, data=UserUpdate(goal="endurance", session_minutes=45))
        tick = pusher.run_once()
        assert tick.new_events == 1 and told[-1] == {user_id}
        # The event carries the whole profile: what was not changed stays as it was.
        assert _profile(store, user_id) == {
            "goal": "endurance",
            "fitness_level": "intermediate",
            "equipment": "bands,dumbbell",
            "session_minutes": 45,
        }

        # A display name, or a profile field set to the value it had, is no profile change: no event.
        with platform.sessions() as session:
            user = session.get(User, user_id)
            assert user is not None
            update_profile(session, user=user, data=UserUpdate(display_name="Ada", goal="endurance"))
        assert pusher.run_once().new_events == 0 and len(told) == 2

        # The batch build validates the new event type and takes the newest profile event as of each time.
        report = build_features(folder.settings)
        assert report.quarantined == 0
        offline = feature_store(folder.settings)  # with the offline store (PostgreSQL in production)
        view = offline.get_feature_view("user_profile")
        assert view.batch_source is not None
        rows = read_source(offline, view.batch_source, ["user_id", TIMESTAMP, "goal", "session_minutes"])
        mine = rows.filter(pl.col("user_id") == user_id).sort(TIMESTAMP)
        assert mine["goal"].to_list()[1:] == ["mobility", "endurance"]
        assert mine["session_minutes"].to_list()[1:] == [20, 45]
        assert _profile(store, user_id)["goal"] == "endurance"
    finally:
        platform.close()


def test_a_published_item_is_pushed_online_and_the_callback_hears_of_it(folder: Folder, tmp_path: Path) -> None:
    platform = open_platform(folder.settings.platform())
    store = folder.store()
    heard: list[list[str]] = []
    try:
        with platform.sessions() as session:
            known = items_frame(i.as_row() for i in list_items(session)).select("item_id", "category", "level")
            trainer = new_user(session, email=None, password_hash=None, profile=Profile(), role="trainer")
            session.commit()
            body = ContentCreate(
                kind="video",
                title="Box jumps, step by step",
                category="plyometrics",
                level="expert",
                equipment=["other"],
                primary_muscles=["quadriceps", "glutes"],
                duration_min=8,
                premium=True,
            )
            item_id = create_content(session, trainer_id=trainer.id, body=body).id
        pusher = FeaturePusher(engine=platform.engine, store=store, items=known, interval_s=0, on_items=heard.append)
        refs = [f"item_catalogue:{c}" for c in ITEM_CATALOGUE]
        assert pusher.run_once().items == () and _online(store, refs, "item_id", item_id)["item_type"] is None

        with platform.sessions() as session:
            item = session.get(ContentItem, item_id)
            assert item is not None
            media = open_object_store((tmp_path / "objects").as_uri())
            attach_media(session, item=item, store=media, data=io.BytesIO(MP4), max_bytes=1_000_000)
        tick = pusher.run_once()
        assert tick.items == (item_id,) and heard == [[item_id]] and tick.report is None
        row = _online(store, refs, "item_id", item_id)
        assert (row["item_type"], row["item_category"], row["item_level"]) == ("video", "plyometrics", "expert")
        assert (row["item_premium"], row["item_is_plan"], row["item_duration_min"]) == (1, 0, 8)
        assert row["item_muscles"] == "glutes,quadriceps" and row["item_intensity"] == pytest.approx(0.9)

        # The pusher knows the new item at once: a workout on it counts in the user's category mix.
        folder.ingest([_workout("u1", datetime.now(UTC) - timedelta(seconds=5), 20)])
        folder.ingest([{**_workout("u1", datetime.now(UTC) - timedelta(seconds=4), 10), "item_id": item_id}])
        pusher.run_once()
        mix = _online(store, ["user_workout_stats:mix_plyometrics"], "user_id", "u1")["mix_plyometrics"]
        assert mix == pytest.approx(1 / 3)  # of three workouts in 28 days, one on the new item

        # Pushed rows are stamped like the build's: the next build's catalogue still replaces them.
        with platform.sessions() as session:
            item = session.get(ContentItem, item_id)
            assert item is not None
            update_content(session, item=item, body=ContentUpdate(level="beginner"))
        build_features(folder.settings)
        assert _online(store, refs, "item_id", item_id)["item_level"] == "beginner"
    finally:
        platform.close()


def test_recent_items_are_built_and_pushed_and_only_slate_events_call_back(folder: Folder) -> None:
    platform = open_platform(folder.settings.platform())
    store = folder.store()
    # The batch build wrote u1's recent items into the offline store and materialized them.
    built = _recent(store, "u1")
    assert list(built) == [PLAN] and list(built[PLAN]) == ["completed"]
    calls: list[set[str]] = []

    def on_users(users: set[str]) -> None:
        calls.append(users)
        if len(calls) == 1:
            raise RuntimeError("cache unreachable")

    try:
        pusher = FeaturePusher(engine=platform.engine, store=store, interval_s=0, on_users=on_users)
        now = datetime.now(UTC)
        # Impressions come with every request: they change features, never the callback.
        folder.ingest(
            [_event("recommendation.impression", "u1", PLAN, now, request_id="r1", position=0, model_version="m")]
        )
        tick = pusher.run_once()
        assert tick.report is not None and tick.report.rows["user_engagement"] == 1 and tick.users == frozenset()
        assert calls == [] and _recent(store, "u1") == built

        dismissed, started = now - timedelta(seconds=20), now - timedelta(seconds=10)
        other = "plan-build-muscle-beginner-dumbbells"
        folder.ingest(
            [
                _event("recommendation.dismissed", "u1", other, dismissed, request_id="r1", position=3),
                _event("workout.started", "u1", PLAN, started, session_id="s9"),
            ]
        )
        # A callback that fails fails the pass: its events come again next tick (the push is redone).
        with pytest.raises(RuntimeError, match="cache unreachable"):
            pusher.run_once()
        tick = pusher.run_once()
        assert tick.new_events == 2 and tick.users == {"u1"} and calls == [{"u1"}, {"u1"}]
        assert _recent(store, "u1") == {
            PLAN: {"completed": built[PLAN]["completed"], "started": int(started.timestamp())},
            other: {"dismissed": int(dismissed.timestamp())},
        }
        assert pusher.run_once().new_events == 0 and len(calls) == 2

        # An entitlement event changes no feature, but what the user may be recommended.
        renews = (now + timedelta(days=30)).isoformat()
        folder.ingest(
            [
                _event(
                    "subscription.activated",
                    "u7",
                    None,
                    now,
                    subscription_id="s1",
                    plan_code="monthly",
                    renews_at=renews,
                )
            ]
        )
        tick = pusher.run_once()
        assert tick.report is None and tick.users == {"u7"} and calls[-1] == {"u7"}
    finally:
        platform.close()
