"""What /health/ready reports: each dependency checked concurrently, each with a timeout, off the event loop."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import cache

import anyio
import sqlalchemy as sa

from serving.schemas import CheckPublic, HealthPublic, Status
from serving.state import ServingState

Probe = Callable[[], Awaitable[tuple[Status, str | None]]]


@cache
def _threads() -> anyio.CapacityLimiter:
    # Checks of their own: probes stuck on a hung dependency never take threads from requests.
    return anyio.CapacityLimiter(4)


async def _blocking(work: Callable[[], object]) -> object:
    return await anyio.to_thread.run_sync(work, limiter=_threads(), abandon_on_cancel=True)


async def _check(probe: Probe, timeout_s: float) -> CheckPublic:
    started = time.perf_counter()
    status: Status
    try:
        status, detail = await asyncio.wait_for(probe(), timeout_s)
    except TimeoutError:
        status, detail = "down", f"no answer within {timeout_s * 1000:.0f} ms"
    except Exception as exc:  # noqa: BLE001 - any failure of a dependency is what this reports
        status, detail = "down", f"{type(exc).__name__}: {exc}"
    return CheckPublic(status=status, latency_ms=round((time.perf_counter() - started) * 1000, 2), detail=detail)


async def readiness(state: ServingState) -> HealthPublic:
    engine = state.platform.engine
    redis = bool(state.settings.redis_url)

    async def database() -> tuple[Status, str | None]:
        def select_one() -> None:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        await _blocking(select_one)
        return "ok", None

    async def cache_() -> tuple[Status, str | None]:
        try:
            keys = await state.cache.count()
        except Exception as exc:  # noqa: BLE001 - reported, with what stands in
            return "down", f"{type(exc).__name__}: {exc} (the in-process cache stands in)"
        if redis and keys == 0:
            return "degraded", "Redis is empty (restarted or flushed?): answers are computed until it warms"
        return "ok", f"{keys} keys"

    async def model() -> tuple[Status, str | None]:
        current, problem = state.models.current, state.models.problem
        if current is None:
            return "down", f"{problem}: popularity answers"
        return ("degraded", problem) if problem else ("ok", current.label)

    async def features() -> tuple[Status, str | None]:
        await _blocking(state.recommender.path.probe)
        return ("degraded", state.feature_problem) if state.feature_problem else ("ok", None)

    timeout_s = state.settings.health_timeout_ms / 1000
    names = ("database", "cache", "model", "features")
    results = await asyncio.gather(*(_check(p, timeout_s) for p in (database, cache_, model, features)))
    checks = dict(zip(names, results, strict=True))
    overall: Status = "ok"
    if checks["database"].status == "down":
        overall = "down"
    elif any(c.status != "ok" for c in results):
        overall = "degraded"
    current = state.models.current
    return HealthPublic(
        status=overall,
        checks=checks,
        model_name=state.settings.model_name,
        model_version=current.label if current else None,
        cache="redis" if redis else "memory",
        database=engine.dialect.name,
    )
