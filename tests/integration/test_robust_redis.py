"""The cache's Redis killed, restarted and frozen under the running app (a private redis-server).

The model and the features are in-process fakes, so every answer goes through the real
cache stack (Redis behind the circuit breaker, the in-process fallback) over real HTTP.
"""

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import redis
from support import FakeArms, FakeOnline, serve_app

from pipelines.reliability.servers import PrivateRedis
from platform_api.auth.api_keys import create_api_key
from platform_api.catalogue.service import seed_catalogue
from platform_api.config import PlatformSettings
from platform_api.runtime import open_platform
from serving.app import create_app
from serving.config import ServingSettings
from serving.ranking.path import RankingPath, Recommender

pytestmark = pytest.mark.robustness
PREFIX = "t:"


class FakeRanker:
    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return np.arange(len(frame), dtype=float)


@contextmanager
def _serve(settings: ServingSettings) -> Iterator[str]:
    """The app on a free port, its recommender on the fake model over the app's own cache."""
    app = create_app(settings)
    with serve_app(app) as base:
        state = app.state.serving
        arms = FakeArms(FakeRanker(), version="7")
        state.recommender = Recommender(
            path=RankingPath(catalogue=state.recommender.catalogue, online=FakeOnline({})),
            models=arms,  # type: ignore[arg-type]
            cache=state.cache,
            cache_prefix=PREFIX,
            cache_ttl_s=300,
            request_ids=state.recommender.request_ids,
        )
        yield base


@pytest.fixture
def redis_server() -> Iterator[PrivateRedis]:
    server = PrivateRedis().start()
    yield server
    server.kill()


@pytest.fixture
def app_settings(tmp_path: Path, redis_server: PrivateRedis) -> tuple[ServingSettings, dict[str, str]]:
    platform = open_platform(PlatformSettings(FITREC_DATA_DIR=tmp_path))
    with platform.sessions() as session:
        seed_catalogue(session)
        _, secret = create_api_key(session, name="t", scopes=["recommendations:read"], created_by=None)
        session.commit()
    platform.close()
    settings = ServingSettings(
        FITREC_DATA_DIR=tmp_path,
        REDIS_URL=redis_server.url,
        cache_prefix=PREFIX,
        model_refresh_s=0,
        breaker_reset_s=0.3,
    )
    return settings, {"X-API-Key": secret}


def _rec(base: str, key: dict[str, str], user: str) -> httpx.Response:
    return httpx.get(f"{base}/v1/users/{user}/recommendations", headers=key, timeout=10)


def test_redis_killed_falls_back_and_returns_when_it_is_back(app_settings, redis_server) -> None:  # type: ignore[no-untyped-def]
    settings, key = app_settings
    direct = redis.Redis.from_url(redis_server.url)
    with _serve(settings) as base:
        first, second = _rec(base, key, "u-1"), _rec(base, key, "u-1")
        assert first.json()["cached"] is False and second.json()["cached"] is True  # from Redis
        assert direct.keys(f"{PREFIX}rec:*") == [b"t:rec:u-1"]
        assert direct.hkeys(b"t:rec:u-1") == [b"v7:champion:home:10"]
        assert httpx.get(f"{base}/health/ready").json()["checks"]["cache"]["status"] == "ok"

        redis_server.kill()
        answers = [_rec(base, key, f"u-{i}") for i in range(1, 21)]
        assert [a.status_code for a in answers] == [200] * 20
        assert {a.json()["model_version"] for a in answers} == {"v7"}  # the model still ranks; only the cache moved
        assert _rec(base, key, "u-5").json()["cached"] is True  # from the in-process fallback
        ready = httpx.get(f"{base}/health/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        assert ready.json()["checks"]["cache"]["status"] == "down"
        assert httpx.get(f"{base}/v1/payments/products").status_code == 200

        redis_server.start()  # same port, empty
        cold = httpx.get(f"{base}/health/ready").json()
        assert cold["checks"]["cache"]["status"] == "degraded" and "empty" in cold["checks"]["cache"]["detail"]
        time.sleep(0.5)  # past breaker_reset_s: the next call tries Redis again
        assert _rec(base, key, "u-30").status_code == 200
        assert _rec(base, key, "u-31").status_code == 200
        assert b"t:rec:u-31" in redis.Redis.from_url(redis_server.url).keys(f"{PREFIX}rec:*")


def test_a_frozen_redis_blocks_nothing(app_settings, redis_server) -> None:  # type: ignore[no-untyped-def]
    settings, key = app_settings
    with _serve(settings) as base:
        assert _rec(base, key, "u-1").status_code == 200
        redis_server.freeze()
        try:
            urls = [f"{base}/v1/users/u-{i}/recommendations" for i in range(40)]
            urls += [f"{base}/health/live", f"{base}/v1/payments/products", f"{base}/health/ready"] * 3
            with ThreadPoolExecutor(16) as pool:
                # A hang shows as httpx's timeout; the old synchronous client held the event loop a second a call.
                answers = list(pool.map(lambda u: httpx.get(u, headers=key, timeout=5), urls))
        finally:
            redis_server.thaw()
    assert [a.status_code for a in answers] == [200] * len(urls)
    ready = answers[-1].json()
    assert ready["status"] == "degraded" and ready["checks"]["cache"]["status"] == "down"
