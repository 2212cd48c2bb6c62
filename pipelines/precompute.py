"""Batch precompute: every active user's top-k ranked by the serving ranking path and written into the shared
serving cache, on Ray Data, so the morning's requests are cache hits.

Each Ray actor assembles the same parts as an API process (serving.ranking.factory): catalogue, online features,
premium access, rules, the registry's champion (and challenger, with the A/B split), and writes slates under the
keys and fields `answer` reads. `RAY_ADDRESS` runs it on a cluster; otherwise a local Ray of `FITREC_RAY_NUM_CPUS`.
"""

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa

from pipelines.config import PipelineSettings
from platform_api.catalogue.service import list_items
from platform_api.events.tables import EventLog
from platform_api.runtime import open_platform
from serving.config import ServingSettings
from serving.ranking.cache import shared_cache
from serving.ranking.path import Recommender

log = logging.getLogger(__name__)
BATCH_CACHE_TIMEOUT_S = 2.0


class PrecomputeError(RuntimeError):
    """Precompute cannot run as configured (the message says what to change)."""


class NoSharedCache(PrecomputeError):
    """The serving cache is each API process's own (memory://): there is nothing to precompute into."""


@dataclass(frozen=True)
class PrecomputeReport:
    users: int
    warmed: int
    failed: int
    seconds: float
    actors: int
    versions: dict[str, int] = field(default_factory=dict)  # "v3/champion" → users warmed with it
    errors: dict[str, int] = field(default_factory=dict)  # first line of each error → users

    @property
    def users_per_s(self) -> float:
        return self.warmed / self.seconds if self.seconds else 0.0


def active_users(settings: ServingSettings, *, days: float) -> list[str]:
    """Users with any event in the last `days` days, in id order."""
    platform = open_platform(settings.platform(), migrate=False)
    try:
        since = datetime.now(UTC) - timedelta(days=days)
        t = EventLog.__table__.c
        stmt = sa.select(t.user_id).where(t.user_id.is_not(None), t.occurred_at >= since).distinct()
        with platform.sessions() as session:
            return sorted(str(u) for u in session.scalars(stmt))
    finally:
        platform.close()


def serving_settings(settings: PipelineSettings) -> ServingSettings:
    """The serving settings of the worker's platform, data folder, stores and registry (the rest from the
    environment, FITREC_SERVING_*, as the API reads it)."""
    return ServingSettings(
        FITREC_DATA_DIR=settings.data_dir,
        DATABASE_URL=settings.database_url,
        REDIS_URL=settings.redis_url,
        FITREC_FEAST_PROJECT=settings.feast_project,
        MLFLOW_TRACKING_URI=settings.mlflow_tracking_uri,
    )


def _check_cache(settings: ServingSettings) -> None:
    if settings.cache_url.startswith("memory://"):
        raise NoSharedCache(
            "precompute writes the shared serving cache, and this configuration has only the API process's own "
            "in-process cache (memory://): set REDIS_URL or FITREC_SERVING_CACHE_URL to the Redis the API reads"
        )


class _Warmer:
    """One Ray actor: the serving parts, built once, warming a batch of users at a time."""

    def __init__(self, settings: ServingSettings, *, k: int, surface: str, ttl_s: int) -> None:
        self._k, self._surface = k, surface
        self._loop = asyncio.new_event_loop()  # the Redis client belongs to one loop: keep it for the actor's life
        self._platform = open_platform(settings.platform(), migrate=False)
        with self._platform.sessions() as session:
            items = list_items(session)
        _, features = settings.open_features(items)
        if features.reader is None or features.problem:
            # A request would degrade to popularity; a precomputed slate would keep that for the whole TTL.
            raise PrecomputeError(f"online features unavailable: {features.problem}")
        models = settings.model_arms()
        models.refresh()
        # The batch scores with the model it loaded, not an endpoint per user.
        path = settings.ranking_path(items, features, self._platform.sessions, scorer_url="inprocess://")
        self._recommender = Recommender(
            path=path,
            models=models,
            # A batch can wait for Redis longer than a request may (a busy Redis must not fail users).
            cache=shared_cache(
                settings.cache_url, timeout_s=max(settings.cache_timeout_ms / 1000, BATCH_CACHE_TIMEOUT_S)
            ),
            cache_prefix=settings.cache_prefix,
            cache_ttl_s=ttl_s,
            request_ids=settings.request_ids(),
        )

    async def _warm(self, users: Iterable[str]) -> tuple[list[str], list[str]]:
        served, errors = [], []
        for user_id in users:
            try:
                version, arm = await self._recommender.warm(user_id, k=self._k, surface=self._surface)
            except Exception as exc:  # noqa: BLE001 - one user's failure is counted, the batch goes on
                served.append("")
                errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            else:
                served.append(f"{version}/{arm}")
                errors.append("")
        return served, errors

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        served, errors = self._loop.run_until_complete(self._warm(str(u) for u in batch["user_id"]))
        return {"served": np.array(served, dtype=object), "error": np.array(errors, dtype=object)}


def precompute(
    settings: ServingSettings,
    *,
    users: list[str] | None = None,
    active_days: float = 30.0,
    k: int = 10,
    surface: str = "home",
    ttl_s: int = 86_400,
    actors: int | None = None,
    batch_size: int = 200,
) -> PrecomputeReport:
    """Warm the serving cache with the top-k of `users` (default: the active users); figures of the run."""
    from ray import data as ray_data

    from training.ray_runtime import RaySettings, ensure_ray

    _check_cache(settings)
    chosen = active_users(settings, days=active_days) if users is None else users
    ray_settings = RaySettings()
    ensure_ray(ray_settings)
    if not chosen:
        return PrecomputeReport(users=0, warmed=0, failed=0, seconds=0.0, actors=0)
    import ray

    n_actors = actors or max(1, int(ray.available_resources().get("CPU", ray_settings.num_cpus)))
    n_actors = min(n_actors, max(1, len(chosen) // batch_size))
    context = ray_data.DataContext.get_current()
    context.enable_progress_bars = False  # a scheduled job's log, not a terminal
    started = time.perf_counter()
    dataset = ray_data.from_items([{"user_id": u} for u in chosen]).map_batches(
        _Warmer,
        fn_constructor_kwargs={"settings": settings, "k": k, "surface": surface, "ttl_s": ttl_s},
        batch_size=batch_size,
        compute=ray_data.ActorPoolStrategy(size=n_actors),
        num_cpus=1,
        batch_format="numpy",
    )
    versions: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        versions.update(s for s in batch["served"] if s)
        errors.update(e for e in batch["error"] if e)
    seconds = time.perf_counter() - started
    failed = sum(errors.values())
    if failed:
        log.warning("precompute: %d of %d users failed: %s", failed, len(chosen), dict(errors.most_common(3)))
    return PrecomputeReport(
        users=len(chosen),
        warmed=sum(versions.values()),
        failed=failed,
        seconds=seconds,
        actors=n_actors,
        versions=dict(versions),
        errors=dict(errors),
    )


def describe(report: PrecomputeReport) -> dict[str, Any]:
    """The report as the worker's job records it."""
    return {
        "users": report.users,
        "warmed": report.warmed,
        "failed": report.failed,
        "seconds": round(report.seconds, 2),
        "users_per_s": round(report.users_per_s, 1),
        "actors": report.actors,
        "versions": report.versions,
    }
