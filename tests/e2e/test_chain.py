"""The whole main job on a small population, on the embedded default and on PostgreSQL + Redis:
events → features → trained, registered ranker → the running app serving a cached top-10."""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import select
from support import running_worker, serve_app

from features.store import open_store
from pipelines.build_features import build_features
from pipelines.config import PipelineSettings
from pipelines.load_served import load_served
from pipelines.simulate import simulate_into_platform
from pipelines.train import run_training
from platform_api.auth.api_keys import create_api_key
from platform_api.catalogue.service import list_items, seed_catalogue
from platform_api.events.tables import EventLog
from platform_api.runtime import open_platform
from serving.app import create_app
from serving.config import ServingSettings
from training.simulator import simulate
from training.steps import TrainingConfig

USERS, DAYS, SEED = 300, 45, 11


@pytest.fixture(params=["embedded", "production"])
def profile(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str | None]:
    if request.param == "embedded":
        return {"FITREC_DATA_DIR": str(tmp_path), "DATABASE_URL": None, "REDIS_URL": None, "prefix": "fitrec:"}
    return {
        "FITREC_DATA_DIR": str(tmp_path),
        "DATABASE_URL": request.getfixturevalue("pg_url"),
        "REDIS_URL": request.getfixturevalue("redis_url"),
        "prefix": request.getfixturevalue("redis_prefix"),
    }


@pytest.fixture
def trained(profile: dict[str, str | None]) -> Iterator[tuple[PipelineSettings, dict[str, float]]]:
    settings = PipelineSettings(
        FITREC_DATA_DIR=profile["FITREC_DATA_DIR"], DATABASE_URL=profile["DATABASE_URL"], REDIS_URL=profile["REDIS_URL"]
    )
    platform = open_platform(settings.platform())
    with platform.sessions() as session:
        seed_catalogue(session)
        items = list_items(session)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    report = simulate_into_platform(platform.sessions, items=items, users=USERS, days=DAYS, seed=SEED, end=end)
    assert report.stored == report.events > 10_000
    # The same arguments give the same population: its ground truth is the oracle.
    sim = simulate(items, users=USERS, days=DAYS, seed=SEED, end=end)
    platform.close()
    build_features(settings)
    # The embedded chain trains every source; the production one leaves the two-tower out (its stores, not
    # its models, are what differs; that saves CI a minute).
    config = TrainingConfig(two_tower=profile["DATABASE_URL"] is None)
    result = run_training(settings, oracle=sim.utility, config=config)
    yield settings, result.metrics
    if settings.redis_url:
        store = open_store(data_dir=settings.data_dir, redis_url=settings.redis_url, project=settings.feast_project)
        store.teardown()


def test_events_to_cached_top10(trained, profile) -> None:  # type: ignore[no-untyped-def]
    settings, metrics = trained
    # The ranker learns the population's preferences: clearly above popularity and near the oracle.
    model, popularity, oracle = metrics["ndcg@10"], metrics["popularity_ndcg@10"], metrics["oracle_ndcg@10"]
    assert model > popularity + 0.03, metrics
    assert model > 0.75 * oracle, metrics

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    champion = client.get_model_version_by_alias(settings.model_name, "champion")

    serving = ServingSettings(
        FITREC_DATA_DIR=settings.data_dir,
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        cache_prefix=profile["prefix"],
        model_refresh_s=0,
    )
    platform = open_platform(settings.platform())
    with platform.sessions() as session:
        _, secret = create_api_key(session, name="app backend", scopes=["recommendations:read"], created_by=None)
        session.commit()
    platform.close()
    key = {"X-API-Key": secret}

    worker = running_worker(
        settings.data_dir,
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        push_interval_s=0,
        served_load_s=1.0,
    )
    with worker, serve_app(create_app(serving)) as base:
        health = httpx.get(f"{base}/health").json()
        assert health["model_version"] == f"v{champion.version}"
        assert {name: c["status"] for name, c in health["checks"].items() if name != "cache"} == {
            "database": "ok",
            "model": "ok",
            "features": "ok",
        }
        assert health["cache"] == ("redis" if settings.redis_url else "memory")
        freshness = httpx.get(f"{base}/health/features").json()["views"]
        assert {"user_workout_stats", "item_stats", "item_catalogue"} <= set(freshness)
        assert all(age is not None and age >= 0 for age in freshness.values())

        anonymous = httpx.get(f"{base}/v1/users/u-00001/recommendations")
        assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"
        first = httpx.get(f"{base}/v1/users/u-00001/recommendations", params={"k": 10}, headers=key, timeout=30).json()
        assert first["cached"] is False and first["count"] == 10 and first["model_version"] == f"v{champion.version}"
        assert first["fallback_reason"] is None  # the model ranked it, no fallback
        assert len({d["item_id"] for d in first["data"]}) == 10
        scores = [d["score"] for d in first["data"]]
        assert scores == sorted(scores, reverse=True)
        assert all(d["reason"] for d in first["data"])

        second = httpx.get(f"{base}/v1/users/u-00001/recommendations", params={"k": 10}, headers=key, timeout=30).json()
        assert second["cached"] is True and second["data"] == first["data"]
        assert second["request_id"] != first["request_id"]

        bad = httpx.get(f"{base}/v1/users/u-00001/recommendations", params={"k": 0}, headers=key)
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"

    # Served slates reach the event log as impressions without a command: the worker loads the app's served log
    # as it grows, and a last time when it stops (after the app's last flush); the command finds nothing left.
    leftover = load_served(settings)
    assert leftover.slates == 0 and leftover.stored == 0 and leftover.rejected == []
    platform = open_platform(settings.platform())
    with platform.sessions() as session:
        rows = session.scalars(
            select(EventLog).where(EventLog.event_type == "recommendation.impression", EventLog.user_id == "u-00001")
        ).all()
    platform.close()
    served = {(r.properties["request_id"], r.properties["position"], r.item_id) for r in rows}
    for response in (first, second):
        expected = {(response["request_id"], i, d["item_id"]) for i, d in enumerate(response["data"])}
        assert expected <= served
        shown = [r.properties for r in rows if r.properties["request_id"] == response["request_id"]]
        assert {(p["cached"], p["model_version"]) for p in shown} == {(response["cached"], response["model_version"])}
