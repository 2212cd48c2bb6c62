"""The Feast store end to end: hand-made events → event log → build_features → online and training reads."""

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from features.freshness import feature_freshness
from features.push import push_events
from features.retrieval import OnlineFeatureReader, historical_features, online_features
from features.schema import CATEGORIES, FILLS, GOAL_CATEGORIES, HISTORY_DAYS, NO_EQUIPMENT
from features.services import RANKING_FEATURES, RANKING_SERVICE
from features.store import apply_definitions, open_store
from pipelines.build_features import FeatureBuildReport, build_features, materialize, refresh_users
from pipelines.config import PipelineSettings
from platform_api.catalogue.build import GOAL_CATEGORIES as CATALOGUE_GOAL_CATEGORIES
from platform_api.catalogue.service import NO_EQUIPMENT as CATALOGUE_NO_EQUIPMENT
from platform_api.catalogue.service import Item, list_items, seed_catalogue
from platform_api.events.ingest import ingest
from platform_api.runtime import open_platform

# Midnight five days ago: every event lies in the past and inside the 7-day window of today's row.
BASE = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=5)
LABEL_TIME = BASE + timedelta(days=3, hours=12)
LATE_WORKOUT_TIME = BASE + timedelta(days=4, hours=1)


def _event(event_type: str, user_id: str, at: datetime, item_id: str | None = None, **properties: object) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "user_id": user_id,
        "item_id": item_id,
        "occurred_at": at.isoformat(),
        "properties": properties,
    }


def _workout(user_id: str, item: Item, at: datetime, minutes: float, rpe: float) -> dict:
    return _event(
        "workout.completed",
        user_id,
        at,
        item.item_id,
        session_id=uuid.uuid4().hex,
        duration_min=minutes,
        total_sets=10,
        total_reps=100,
        calories=300,
        rpe=rpe,
    )


def _events(plan: Item, guide: Item) -> list[dict]:
    day = lambda n, h: BASE + timedelta(days=n, hours=h)  # noqa: E731
    return [
        _event(
            "user.created",
            "u1",
            day(0, 8),
            goal="build_strength",
            fitness_level="beginner",
            equipment=["dumbbell", "body only"],
            session_minutes=40,
        ),
        _event(
            "user.created", "u2", day(0, 9), goal="mobility", fitness_level="expert", equipment=[], session_minutes=20
        ),
        _workout("u1", plan, day(1, 9), 30, 6),
        _workout("u1", plan, day(2, 9), 40, 8),
        _event(
            "health_metric.synced",
            "u1",
            day(1, 7),
            day=day(1, 0).date().isoformat(),
            steps=8000,
            resting_hr=60,
            sleep_minutes=420,
        ),
        _event(
            "health_metric.synced",
            "u1",
            day(2, 7),
            day=day(2, 0).date().isoformat(),
            steps=10000,
            resting_hr=62,
            sleep_minutes=480,
        ),
        # Before the label time, but on the label's own day: the label's row is the previous day's.
        _event(
            "recommendation.impression", "u1", day(3, 10), guide.item_id, request_id="r1", position=0, model_version="1"
        ),
        _event(
            "recommendation.impression", "u1", day(3, 10), plan.item_id, request_id="r1", position=1, model_version="1"
        ),
        _event(
            "recommendation.clicked",
            "u1",
            day(
                3,
                10,
            ),
            plan.item_id,
            request_id="r1",
            position=1,
        ),
    ]


@dataclass
class Built:
    settings: PipelineSettings
    report: FeatureBuildReport
    plan: Item
    guide: Item


def _build(data_dir: Path, *, late_workout: bool) -> Built:
    # Embedded profile on purpose, whatever the environment says: SQLite platform DB, SQLite online store.
    settings = PipelineSettings(FITREC_DATA_DIR=data_dir, DATABASE_URL=None, REDIS_URL=None)
    platform = open_platform(settings.platform())
    with platform.sessions() as session:
        seed_catalogue(session)
        items = list_items(session)
        plan = next(i for i in items if i.item_id == "plan-build-strength-beginner-bodyweight")
        guide = next(
            i
            for i in items
            if i.item_type == "exercise_guide"
            and i.category == "stretching"
            and i.level == "expert"
            and set(i.equipment) <= NO_EQUIPMENT
        )
        raw = _events(plan, guide)
        if late_workout:
            raw.append(_workout("u1", plan, LATE_WORKOUT_TIME, 50, 9))
        result = ingest(session, raw=raw)
        assert not result.rejected, result.rejected
        session.commit()
    platform.close()
    return Built(settings, build_features(settings), plan, guide)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return _build(tmp_path_factory.mktemp("features"), late_workout=False)


@pytest.fixture(scope="module")
def built_with_late_event(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return _build(tmp_path_factory.mktemp("features-late"), late_workout=True)


def _store(b: Built):  # type: ignore[no-untyped-def]
    return open_store(data_dir=b.settings.data_dir, project=b.settings.feast_project)


def test_feature_vocabulary_matches_the_catalogue() -> None:
    assert GOAL_CATEGORIES == CATALOGUE_GOAL_CATEGORIES
    assert NO_EQUIPMENT == CATALOGUE_NO_EQUIPMENT


def test_build_report_counts_events_and_rows(built: Built) -> None:
    report = built.report
    assert report.events == 9  # seeding's content.ready events are not feature events
    # u1: one empty row + a row per day from day 1 to today (day 5).
    assert report.rows_per_table["user_workout_stats"] == 1 + 5
    assert report.rows_per_table["user_profile"] == 2 + 2
    assert report.rows_per_table["item_catalogue"] == 930 + 72
    assert report.materialized_until <= datetime.now(UTC)


def test_catalogue_categories_are_known(built: Built) -> None:
    platform = open_platform(built.settings.platform())
    with platform.sessions() as session:
        categories = {i.category for i in list_items(session)}
    platform.close()
    assert categories <= set(CATEGORIES)


def test_online_features_of_an_active_user(built: Built) -> None:
    store = _store(built)
    feats = online_features(store, "u1", [built.plan.item_id, built.guide.item_id])
    assert list(feats.columns) == list(RANKING_FEATURES)
    assert list(feats.index) == [built.plan.item_id, built.guide.item_id]
    plan, guide = feats.iloc[0], feats.iloc[1]
    # Today's row: both workouts (days 1, 2) inside 7 days; last one 3 days ago; streak broken.
    assert plan["workouts_7d"] == 2 and plan["workouts_28d"] == 2
    assert plan["minutes_7d"] == 70 and plan["avg_rpe_28d"] == 7
    assert plan["days_since_last_workout"] == 3 and plan["streak_days"] == 0
    assert plan["steps_7d_avg"] == 9000 and plan["resting_hr_7d_avg"] == 61 and plan["sleep_7d_avg"] == 450
    # No sync today: the week's sleep (7.5 h) and heart rate trend (flat); no training in the last 3 days.
    assert plan["sleep_1d"] == 0 and plan["training_load_3d"] == 0
    assert plan["recovery_score"] == pytest.approx(0.45 * (450 - 300) / 180 + 0.35 * 0.5 + 0.2 * 1.0)
    assert plan["impressions_28d"] == 2 and plan["clicks_28d"] == 1 and plan["ctr_28d"] == 0.5
    # Item side.
    assert plan["item_completions_28d"] == 2 and plan["item_clicks_28d"] == 1 and plan["item_ctr_28d"] == 1.0
    assert guide["item_impressions_28d"] == 1 and guide["item_ctr_28d"] == 0.0
    assert plan["item_is_plan"] == 1 and guide["item_is_plan"] == 0
    # Fits: a beginner build-strength plan for a beginner who wants strength; an expert stretch for the same user.
    assert plan["level_fit"] == 1.0 and guide["level_fit"] < 0.5
    assert plan["goal_fit"] == 1.0 and guide["goal_fit"] == 0.0
    assert plan["equipment_fit"] == 1.0
    assert plan["category_mix"] == 1.0 and guide["category_mix"] == 0.0
    assert plan["category_affinity"] > guide["category_affinity"]


def test_unknown_user_and_item_get_the_fills(built: Built) -> None:
    feats = online_features(_store(built), "nobody", ["no-such-item"])
    row = feats.iloc[0]
    assert row["days_since_last_workout"] == HISTORY_DAYS
    assert row["workouts_28d"] == 0 and row["recovery_score"] == FILLS["recovery_score"]
    assert row["level_fit"] == 0.5 and row["category_affinity"] == pytest.approx(1 / len(CATEGORIES))
    assert not row.isna().any()


def test_the_caching_reader_equals_the_direct_read(built: Built) -> None:
    store = _store(built)
    reader = OnlineFeatureReader(store, item_ttl_s=3600)
    items = [built.guide.item_id, "no-such-item", built.plan.item_id, built.guide.item_id]
    for user in ("u1", "u2", "nobody"):
        pd.testing.assert_frame_equal(reader.features(user, items), online_features(store, user, items))
    # Served from the cache: the same rows come back without reading the items again.
    reader._store = None  # type: ignore[assignment]
    with pytest.raises(AttributeError):
        reader.features("u1", items)  # the user side is always read
    assert reader.item_rows(items)["item_is_plan"].tolist() == [0.0, 0.0, 1.0, 0.0]


def test_online_equals_historical_at_the_same_time(built: Built) -> None:
    store = _store(built)
    items = [built.plan.item_id, built.guide.item_id, "no-such-item"]
    online = online_features(store, "u1", items)
    entity_df = pd.DataFrame(
        {"user_id": "u1", "item_id": items, "event_timestamp": built.report.materialized_until + timedelta(seconds=1)}
    )
    hist = historical_features(store, entity_df)
    pd.testing.assert_frame_equal(hist[list(RANKING_FEATURES)].reset_index(drop=True), online.reset_index(drop=True))


ENGINES = pytest.mark.parametrize("engine", ["feast", "polars"])


@ENGINES
def test_historical_features_are_point_in_time(built: Built, engine: str) -> None:
    store = _store(built)
    entity_df = pd.DataFrame(
        {
            "request_id": ["a", "b", "c"],
            "user_id": ["u1", "u1", "u2"],
            "item_id": [built.plan.item_id, built.plan.item_id, built.guide.item_id],
            "event_timestamp": [LABEL_TIME, BASE + timedelta(hours=1), LABEL_TIME],
            "label": [2, 0, 1],
        }
    )
    hist = historical_features(store, entity_df, engine=engine)  # type: ignore[arg-type]
    assert list(hist.columns) == [*entity_df.columns, *RANKING_FEATURES]
    assert list(hist["request_id"]) == ["a", "b", "c"]
    at_label, before_anything, quiet_user = hist.iloc[0], hist.iloc[1], hist.iloc[2]
    # The label's row is the end of day 2: the day-3 impressions are not in it yet.
    assert at_label["workouts_7d"] == 2 and at_label["days_since_last_workout"] == 0
    assert at_label["streak_days"] == 2 and at_label["impressions_28d"] == 0
    assert at_label["goal_fit"] == 1.0
    # Before any event, the user is unknown: the same fills as online.
    assert before_anything["workouts_28d"] == 0 and before_anything["goal_fit"] == 0.5
    assert before_anything["days_since_last_workout"] == HISTORY_DAYS
    assert quiet_user["workouts_28d"] == 0 and quiet_user["level_fit"] == 1.0


@ENGINES
def test_an_event_after_the_label_changes_nothing_in_its_row(
    built: Built, built_with_late_event: Built, engine: str
) -> None:
    entity_df = pd.DataFrame(
        {
            "user_id": ["u1", "u1"],
            "item_id": [built.plan.item_id, built.guide.item_id],
            "event_timestamp": [LABEL_TIME, LABEL_TIME],
        }
    )
    without = historical_features(_store(built), entity_df, engine=engine)  # type: ignore[arg-type]
    with_late = historical_features(_store(built_with_late_event), entity_df, engine=engine)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(without, with_late)
    # The late workout is real: today's online row counts it.
    online = online_features(_store(built_with_late_event), "u1", [built.plan.item_id])
    assert online.iloc[0]["workouts_7d"] == 3


def test_both_engines_build_the_same_training_set(built: Built) -> None:
    users = ["u1", "u2", "nobody"]
    items = [built.plan.item_id, built.guide.item_id, "no-such-item"]
    # Every day boundary and the hours around events, with many rows sharing a timestamp.
    stamps = [BASE + timedelta(hours=h) for h in (-1, 0, 8, 9, 24, 33, 34, 48, 58, 72, 84, 96, 120)]
    stamps.append(built.report.materialized_until + timedelta(seconds=1))
    entity_df = pd.DataFrame(
        [
            {"user_id": u, "item_id": i, "event_timestamp": t, "label": k}
            for k, (u, i, t) in enumerate((u, i, t) for u in users for i in items for t in stamps)
        ]
    ).sample(frac=1.0, random_state=3)
    store = _store(built)
    via_feast = historical_features(store, entity_df, engine="feast")
    via_polars = historical_features(store, entity_df, engine="polars")
    pd.testing.assert_frame_equal(via_feast, via_polars)
    assert via_feast["workouts_28d"].max() == 2  # not trivially all fills


def test_more_than_a_thousand_rows_sharing_a_timestamp_all_get_features(built: Built) -> None:
    n = 1005
    entity_df = pd.DataFrame(
        {
            "user_id": ["u1"] * n,
            "item_id": [built.plan.item_id, built.guide.item_id] * (n // 2) + [built.plan.item_id],
            "event_timestamp": [LABEL_TIME] * n,
        }
    )
    hist = historical_features(_store(built), entity_df, engine="feast")
    assert (hist["workouts_7d"] == 2).all() and (hist["streak_days"] == 2).all()
    assert hist["item_is_plan"].tolist() == [1.0, 0.0] * (n // 2) + [1.0]


def test_feature_service_is_registered(built: Built) -> None:
    service = _store(built).get_feature_service(RANKING_SERVICE)
    assert service.name == "ranking_v1"


def test_a_push_makes_a_new_online_value_visible(built: Built) -> None:
    # u2 has only signed up; the module's other online assertions are about u1.
    store = _store(built)
    before = online_features(store, "u2", [built.plan.item_id]).iloc[0]
    assert before["workouts_7d"] == 0 and before["days_since_last_workout"] == HISTORY_DAYS
    platform = open_platform(built.settings.platform())
    with platform.sessions() as session:
        now = datetime.now(UTC)
        result = ingest(session, raw=[_workout("u2", built.plan, now - timedelta(seconds=5), 25, 5)])
        assert result.stored == 1
        session.commit()
    platform.close()

    started = time.perf_counter()
    report = refresh_users(built.settings, ["u2"], store=store)
    elapsed = time.perf_counter() - started

    assert report.users == 1 and report.rows["user_workout_stats"] == 1
    after = online_features(store, "u2", [built.plan.item_id]).iloc[0]
    assert after["workouts_7d"] == 1 and after["minutes_7d"] == 25 and after["days_since_last_workout"] == 0
    assert after["streak_days"] == 1 and after["category_mix"] == 1.0
    # Item stats are batch-only: the plan's completion count is what the build wrote.
    assert after["item_completions_28d"] == before["item_completions_28d"]
    assert elapsed < 10, f"push took {elapsed:.1f}s"


def test_feature_freshness_reports_every_view(built: Built) -> None:
    store = _store(built)
    ages = feature_freshness(store, now=built.report.materialized_until + timedelta(hours=1))
    assert set(ages) == {
        "user_profile",
        "user_workout_stats",
        "user_health",
        "user_engagement",
        "item_stats",
        "item_catalogue",
        "user_recent_items",
    }
    # The build's own as-of rows are at most seconds older than the materialization.
    assert 3600 <= ages["user_workout_stats"] < 3600 + 120
    assert 3600 <= ages["item_catalogue"] < 3600 + 120
    # u1/u2 signed up on day 0: the newest profile row is that old.
    assert ages["user_profile"] > 4 * 86400


def test_redis_online_store_serves_the_same_features(built: Built, redis_url: str, tmp_path: Path) -> None:
    import shutil

    import redis

    project = f"fitrec_test_{uuid.uuid4().hex[:10]}"
    shutil.copytree(built.settings.data_dir / "offline", tmp_path / "offline")
    store = open_store(data_dir=tmp_path, redis_url=redis_url, project=project)
    try:
        apply_definitions(store)
        materialize(store, end_date=datetime.now(UTC))
        items = [built.plan.item_id, built.guide.item_id]
        from_redis = online_features(store, "u1", items)
        from_sqlite = online_features(_store(built), "u1", items)
        pd.testing.assert_frame_equal(from_redis, from_sqlite)
        assert from_redis.iloc[0]["workouts_28d"] == 2

        # A push through the Redis profile is visible on the next read.
        event = _workout("nobody-yet", built.plan, datetime.now(UTC) - timedelta(seconds=1), 15, 4)
        event["event_id"] = uuid.UUID(event["event_id"])
        event["occurred_at"] = datetime.fromisoformat(event["occurred_at"])
        push_events(store, [event])
        assert online_features(store, "nobody-yet", items).iloc[0]["workouts_7d"] == 1
        assert list(redis.Redis.from_url(redis_url).scan_iter(match=f"*{project}*", count=1000))
    finally:
        store.teardown()
    client = redis.Redis.from_url(redis_url)
    assert not list(client.scan_iter(match=f"*{project}*", count=1000))


def test_incremental_build_materializes_only_the_new_interval(built_with_late_event: Built) -> None:
    b = built_with_late_event
    platform = open_platform(b.settings.platform())
    with platform.sessions() as session:
        ingest(session, raw=[_workout("u2", b.plan, datetime.now(UTC) - timedelta(seconds=2), 35, 7)])
        session.commit()
    platform.close()

    second = build_features(b.settings)

    store = _store(b)
    intervals = store.get_feature_view("user_workout_stats").materialization_intervals
    assert len(intervals) == 2
    assert intervals[1][0] == intervals[0][1] == b.report.materialized_until
    assert intervals[1][1] == second.materialized_until
    assert online_features(store, "u2", [b.plan.item_id]).iloc[0]["minutes_7d"] == 35


def test_fitbit_exports_pass_through_as_health_features(tmp_path: Path) -> None:
    from sqlalchemy import select

    from platform_api.health.fitbit import import_fitbit
    from platform_api.health.tables import HealthMetricDay

    settings = PipelineSettings(FITREC_DATA_DIR=tmp_path, DATABASE_URL=None, REDIS_URL=None)
    platform = open_platform(settings.platform())
    with platform.sessions() as session:
        seed_catalogue(session)
        report = import_fitbit(session)
        session.commit()
        days = pd.DataFrame(
            [(r.user_id, r.day, r.steps, r.sleep_minutes) for r in session.scalars(select(HealthMetricDay))],
            columns=["user_id", "day", "steps", "sleep"],
        )
    platform.close()
    assert report.users == 33 and len(days) == report.days > 800
    build_features(settings)

    # At midnight starting day D+1 the row of day D holds days D-6..D (each day's metrics are known at its end).
    labels = [datetime(2016, 4, 20, tzinfo=UTC), datetime(2016, 5, 1, tzinfo=UTC), datetime(2016, 5, 12, tzinfo=UTC)]
    users = sorted(days["user_id"].unique())
    entity_df = pd.DataFrame([{"user_id": u, "item_id": "none", "event_timestamp": t} for u in users for t in labels])
    store = open_store(data_dir=tmp_path, project=settings.feast_project)
    hist = historical_features(store, entity_df, engine="polars")
    checked = 0
    for row in hist.itertuples():
        stamp = row.event_timestamp
        window = days[
            (days["user_id"] == row.user_id)
            & (days["day"] >= (stamp - timedelta(days=7)).date())
            & (days["day"] <= (stamp - timedelta(days=1)).date())
        ]
        steps, sleep = window["steps"].dropna(), window["sleep"].dropna()
        assert row.steps_7d_avg == pytest.approx(steps.mean() if len(steps) else 0.0), (row.user_id, stamp)
        assert row.sleep_7d_avg == pytest.approx(sleep.mean() if len(sleep) else 0.0), (row.user_id, stamp)
        checked += len(steps) > 0
    assert checked > 50


def test_production_profile_sql_registry_and_redis(built: Built, pg_url: str, redis_url: str, tmp_path: Path) -> None:
    import shutil

    project = f"fitrec_test_{uuid.uuid4().hex[:10]}"
    shutil.copytree(built.settings.data_dir / "offline", tmp_path / "offline")
    store = open_store(data_dir=tmp_path, redis_url=redis_url, registry_url=pg_url, project=project)
    try:
        apply_definitions(store)
        materialize(store, end_date=datetime.now(UTC))
        # A second process sees the definitions and materialization through the SQL registry.
        other = open_store(data_dir=tmp_path, redis_url=redis_url, registry_url=pg_url, project=project)
        assert other.get_feature_service(RANKING_SERVICE).name == RANKING_SERVICE
        assert other.get_feature_view("user_workout_stats").most_recent_end_time is not None
        items = [built.plan.item_id, built.guide.item_id]
        pd.testing.assert_frame_equal(online_features(other, "u1", items), online_features(_store(built), "u1", items))
        assert not (tmp_path / "feature_repo" / "registry.db").exists()
    finally:
        store.teardown()


def test_read_events_from_postgresql(pg_url: str) -> None:
    from features.schema import FEATURE_EVENT_TYPES
    from platform_api.config import PlatformSettings
    from platform_api.events.read import read_events

    platform = open_platform(PlatformSettings(DATABASE_URL=pg_url))
    plan = Item("p1", "plan", "t", "strength", "beginner", "build_strength", (), (), 30, False)
    with platform.sessions() as session:
        raw = [_workout("u9", plan, BASE + timedelta(hours=5), 30, 6), _event("user.email_verified", "u9", BASE)]
        assert ingest(session, raw=raw).stored == 2
        session.commit()
    frame = read_events(platform.engine, user_ids=["u9"], event_types=FEATURE_EVENT_TYPES)
    everything = read_events(platform.engine, user_ids=["u9"])
    platform.close()
    assert frame.height == 1 and everything.height == 2  # email verification feeds no feature
    row = frame.row(0, named=True)
    assert row["occurred_at"] == BASE + timedelta(hours=5) and row["item_id"] == "p1"
    assert json.loads(row["properties"])["duration_min"] == 30
