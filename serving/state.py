"""Everything the serving app holds for its lifetime, built once at start-up."""

import asyncio
import gc
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from feast import FeatureStore

from platform_api import cache_signals
from platform_api.catalogue.service import list_items
from platform_api.runtime import Platform, open_platform
from serving.auth import KeyCache
from serving.config import ServingSettings
from serving.ranking.cache import Cache, make_cache
from serving.ranking.catalogue import Catalogue
from serving.ranking.metrics import RankingMetrics
from serving.ranking.model_holder import ModelArms
from serving.ranking.path import Recommender
from serving.ranking.served_log import ServedLog

log = logging.getLogger(__name__)
SIGNAL_TIMEOUT_S = 5.0  # a frozen cache stalls one poll, which is retried, never the follower


@dataclass
class ServingState:
    settings: ServingSettings
    platform: Platform
    cache: Cache
    models: ModelArms
    recommender: Recommender
    served: ServedLog
    keys: KeyCache
    store: FeatureStore | None
    feature_problem: str | None  # why recommendations cannot use the online features (None: they can)
    _stop: threading.Event
    catalogue: "CatalogueFollower | None" = None
    signals: "SignalFollower | None" = None

    def close(self) -> None:
        """Stop the background work and free what is held (the async cache closes in `aclose`)."""
        self._stop.set()
        self.served.close()
        self.recommender.path.scorer.close()
        self.platform.close()
        gc.unfreeze()  # what start-up froze may be collected again (several apps in one process: the tests)

    async def aclose(self) -> None:
        await self.cache.close()
        self.close()


def _every(every_s: float, stop: threading.Event, work: Callable[[], object], name: str) -> None:
    def loop() -> None:
        while not stop.wait(every_s):
            try:
                work()
            except Exception:  # noqa: BLE001 - keep serving; the next tick tries again
                log.exception("%s failed", name)

    threading.Thread(target=loop, daemon=True, name=name).start()


class CatalogueFollower:
    """Re-reads the catalogue (newly published items) and swaps it into the ranking path."""

    def __init__(self, platform: Platform, recommender: Recommender) -> None:
        self._platform = platform
        self._recommender = recommender
        self._lock = threading.Lock()

    def refresh(self) -> bool:
        """Re-read it; whether it changed."""
        with self._lock, self._platform.sessions() as session:
            items = list_items(session)
        current = self._recommender.catalogue
        if [i.item_id for i in items] == current.ids.tolist():
            return False
        self._recommender.path.catalogue = Catalogue(items, current.popularity)
        self._recommender.catalogue_changed()
        log.info("catalogue now holds %d items", len(items))
        return True


class SignalFollower:
    """Follows the worker's cache signals: drops users' cached slates, re-reads the catalogue."""

    def __init__(
        self,
        platform: Platform,
        recommender: Recommender,
        catalogue: CatalogueFollower,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._platform = platform
        self._recommender = recommender
        self._catalogue = catalogue
        self._loop = loop
        with platform.sessions() as session:
            self._seq = cache_signals.latest(session)  # what came before is not in this process's cache

    def poll(self) -> int:
        """Act on the signals since the last poll; how many there were."""
        with self._platform.sessions() as session:
            rows = cache_signals.after(session, self._seq)
        if not rows:
            return 0
        if any(kind == cache_signals.CATALOGUE for _, kind, _ in rows):
            self._catalogue.refresh()
        users = {key for _, kind, key in rows if kind == cache_signals.USER and key}
        # The cache belongs to the event loop: hand the deletes to it, and wait, so a failed delete is retried.
        pending = [asyncio.run_coroutine_threadsafe(self._recommender.invalidate(u), self._loop) for u in users]
        for future in pending:
            future.result(timeout=SIGNAL_TIMEOUT_S)
        self._seq = rows[-1][0]
        return len(rows)


def start_serving(settings: ServingSettings, *, metrics: RankingMetrics | None = None) -> ServingState:
    """Everything serving needs; only the platform database is required, the rest degrades."""
    platform = open_platform(settings.platform())
    with platform.sessions() as session:
        items = list_items(session)
    store, features = settings.open_features(items)
    cache = make_cache(
        settings.cache_url,
        max_entries=settings.cache_max_entries,
        timeout_s=settings.cache_timeout_ms / 1000,
        breaker_failures=settings.breaker_failures,
        breaker_reset_s=settings.breaker_reset_s,
        near_ttl_s=settings.near_cache_ttl_s,
    )
    models = settings.model_arms()
    models.refresh()
    served = ServedLog(settings.served_log_dir, flush_s=settings.served_flush_s)
    served.start()
    path = settings.ranking_path(items, features, platform.sessions, scorer_url=settings.scorer_url)
    recommender = Recommender(
        path=path,
        models=models,
        cache=cache,
        cache_prefix=settings.cache_prefix,
        cache_ttl_s=settings.cache_ttl_s,
        request_ids=settings.request_ids(),
        on_served=served.record,
        metrics=metrics,
        rank_timeout_s=settings.rank_timeout_ms / 1000,
        breaker_failures=settings.breaker_failures,
        breaker_reset_s=settings.breaker_reset_s,
    )
    catalogue = CatalogueFollower(platform, recommender)
    stop = threading.Event()
    # The worker (`fitrec worker`) pushes features, loads impressions and relays the outbox; an API process
    # only follows: the model alias, and the worker's signals of stale slates and a changed catalogue.
    signals = SignalFollower(platform, recommender, catalogue, asyncio.get_running_loop())
    if settings.signal_poll_s:
        _every(settings.signal_poll_s, stop, signals.poll, "signal-follower")
    if settings.model_refresh_s:
        _every(settings.model_refresh_s, stop, models.refresh, "model-refresh")
    # Start-up leaves ~600k long-lived objects (libraries, catalogue, model) that every full collection walks:
    # ~330 ms during which every request stalls. Frozen, a collection walks only what requests create.
    gc.collect()
    gc.freeze()
    return ServingState(
        settings=settings,
        platform=platform,
        cache=cache,
        models=models,
        recommender=recommender,
        served=served,
        keys=KeyCache(),
        store=store,
        feature_problem=features.problem,
        _stop=stop,
        catalogue=catalogue,
        signals=signals,
    )
