"""Batch precompute on Ray Data: it fills the shared Redis cache with the serving path's slates, and the API's
next requests for those users are cache hits with the same items."""

from typing import Any

import httpx
import pytest
import redis
from support import TrainedStack, serve_app

from pipelines import jobs
from pipelines.config import WorkerSettings
from pipelines.precompute import PrecomputeError, active_users, precompute
from serving.app import create_app
from serving.config import ServingSettings


def _settings(stack: TrainedStack, **values: Any) -> ServingSettings:
    return ServingSettings(FITREC_DATA_DIR=stack.data_dir, model_refresh_s=0, signal_poll_s=0, **values)


def _top(client: httpx.Client, key: str, user: str) -> dict[str, Any]:
    answer = client.get(f"/v1/users/{user}/recommendations", params={"k": 10}, headers={"X-API-Key": key})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_precompute_fills_the_cache_and_the_next_requests_are_hits(
    served_stack: TrainedStack, ray_session: None, redis_url: str, redis_prefix: str
) -> None:
    settings = _settings(served_stack, FITREC_SERVING_CACHE_URL=redis_url, cache_prefix=redis_prefix)
    users = active_users(settings, days=60)
    assert len(users) >= served_stack.users // 2  # the simulation's users with events
    chosen, left_out = users[:40], users[40:45]

    report = precompute(settings, users=chosen, batch_size=10)

    assert (report.users, report.warmed, report.failed) == (40, 40, 0), report.errors
    assert sum(report.versions.values()) == 40 and all(v.endswith("/champion") for v in report.versions)
    store = redis.Redis.from_url(redis_url)
    cached_keys = {k.decode() for k in store.scan_iter(f"{redis_prefix}rec:*")}
    assert cached_keys == {f"{redis_prefix}rec:{u}" for u in chosen}
    ttl: int = store.ttl(f"{redis_prefix}rec:{chosen[0]}")  # type: ignore[assignment]
    assert ttl > 3600  # a day's TTL, not the 5 minutes of a slate ranked on request

    with serve_app(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as client:
        for user in chosen:
            body = _top(client, served_stack.api_key, user)
            assert body["cached"] is True and body["fallback_reason"] is None, (user, body)
            assert len(body["data"]) == 10
        for user in left_out:
            assert _top(client, served_stack.api_key, user)["cached"] is False


def test_precomputed_slates_are_what_the_api_ranks(
    served_stack: TrainedStack, ray_session: None, redis_url: str, redis_prefix: str
) -> None:
    """The same path: a user's precomputed slate equals the one the API ranks for them with an empty cache."""
    settings = _settings(served_stack, FITREC_SERVING_CACHE_URL=redis_url, cache_prefix=redis_prefix)
    users = active_users(settings, days=60)[50:55]
    with serve_app(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as client:
        ranked = {u: [d["item_id"] for d in _top(client, served_stack.api_key, u)["data"]] for u in users}
        client_redis = redis.Redis.from_url(redis_url)
        client_redis.delete(*(f"{redis_prefix}rec:{u}" for u in users))
        assert precompute(settings, users=users, batch_size=5).warmed == len(users)
        for user in users:
            body = _top(client, served_stack.api_key, user)
            assert body["cached"] is True
            assert [d["item_id"] for d in body["data"]] == ranked[user]


def test_precompute_refuses_an_in_process_cache(served_stack: TrainedStack) -> None:
    with pytest.raises(PrecomputeError, match="REDIS_URL or FITREC_SERVING_CACHE_URL"):
        precompute(_settings(served_stack), users=["u-1"])


def test_the_worker_job_warms_the_active_users_or_skips_without_redis(
    served_stack: TrainedStack, ray_session: None, redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    skipped = jobs.precompute(WorkerSettings(FITREC_DATA_DIR=served_stack.data_dir, DATABASE_URL=None, REDIS_URL=None))
    assert "memory://" in skipped["skipped"]

    monkeypatch.setenv("FITREC_SERVING_CACHE_URL", redis_url)
    monkeypatch.setenv("FITREC_SERVING_CACHE_PREFIX", redis_prefix)
    done = jobs.precompute(WorkerSettings(FITREC_DATA_DIR=served_stack.data_dir, DATABASE_URL=None, REDIS_URL=None))
    active = len(active_users(_settings(served_stack), days=30))
    assert (done["users"], done["warmed"], done["failed"]) == (active, active, 0)
    keys = list(redis.Redis.from_url(redis_url).scan_iter(f"{redis_prefix}rec:*"))
    assert len(keys) == active
