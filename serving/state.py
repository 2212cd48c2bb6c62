"""Everything the serving app holds for its lifetime, built once at start-up."""

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from feast import FeatureStore

from features.postgres import is_postgres
from features.store import open_store
from platform_api.catalogue.service import Item, list_items
from platform_api.email.factory import make_email_sender
from platform_api.outbox import relay_outbox
from platform_api.runtime import Platform, open_platform
from serving.auth import KeyCache
from serving.config import ServingSettings
from serving.feature_push import FeaturePusher
from serving.ranking.cache import Cache, make_cache
from serving.ranking.catalogue import Catalogue
from serving.ranking.factory import Features, open_features, ranking_path, rule_settings
from serving.ranking.impressions import ImpressionLoader
from serving.ranking.model_holder import ModelArms
from serving.ranking.path import Recommender
from serving.ranking.request_ids import RequestIds
from serving.ranking.served_log import ServedLog

log = logging.getLogger(__name__)
PUSH_TIMEOUT_S = 5.0  # the pusher writes in the background: a frozen Redis may stall a push, not hang it


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
    pusher: FeaturePusher | None = None
    impressions: ImpressionLoader | None = None
    catalogue: "CatalogueFollower | None" = None

    def close(self) -> None:
        """Stop the background work and free what is held (the async cache closes in `aclose`)."""
        self._stop.set()
        if self.pusher is not None:
            self.pusher.stop()
        self.served.close()
        if self.impressions is not None:
            self.impressions.close()  # after the served log's last flush: a last load of what it wrote
        self.recommender.path.scorer.close()
        self.platform.close()

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


def _open_features(settings: ServingSettings, items: list[Item]) -> tuple[FeatureStore | None, Features]:
    """The feature store and popularity, or what is missing and why (never raises: serving goes on)."""
    return open_features(
        items,
        data_dir=settings.data_dir,
        redis_url=settings.redis_url,
        project=settings.feast_project,
        offline_url=settings.database_url if is_postgres(settings.database_url) else None,
        redis_timeout_s=settings.online_timeout_ms / 1000,
    )


class CatalogueFollower:
    """Re-reads the catalogue (newly published items) and swaps it into the ranking path."""

    def __init__(self, platform: Platform, recommender: Recommender) -> None:
        self._platform = platform
        self._recommender = recommender
        self._lock = threading.Lock()

    def on_items(self, item_ids: list[str]) -> None:
        """The pusher's callback: these items were just published."""
        self.refresh()

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


def start_serving(settings: ServingSettings) -> ServingState:
    """Everything serving needs; only the platform database is required, the rest degrades."""
    started_at = datetime.now(UTC)  # the feature pusher's watermark: older events are the batch build's
    platform = open_platform(settings.platform())
    with platform.sessions() as session:
        items = list_items(session)
    store, features = _open_features(settings, items)
    cache = make_cache(
        settings.cache_url,
        max_entries=settings.cache_max_entries,
        timeout_s=settings.cache_timeout_ms / 1000,
        breaker_failures=settings.breaker_failures,
        breaker_reset_s=settings.breaker_reset_s,
        near_ttl_s=settings.near_cache_ttl_s,
    )
    models = ModelArms(
        tracking_uri=settings.tracking_uri,
        name=settings.model_name,
        champion_alias=settings.model_alias,
        challenger_alias=settings.challenger_alias,
        challenger_share=settings.challenger_share,
        experiment=settings.experiment,
    )
    models.refresh()
    served = ServedLog(settings.served_log_dir, flush_s=settings.served_flush_s)
    served.start()
    path = ranking_path(
        items,
        features,
        sessions=platform.sessions,
        scorer_url=settings.scorer_url,
        breaker_failures=settings.breaker_failures,
        rules=rule_settings(
            recent_window_days=settings.recent_window_days,
            max_level_above=settings.max_level_above,
            max_per_category=settings.max_per_category,
        ),
        n_candidates=settings.candidates,
    )
    recommender = Recommender(
        path=path,
        models=models,
        cache=cache,
        cache_prefix=settings.cache_prefix,
        cache_ttl_s=settings.cache_ttl_s,
        request_ids=RequestIds(settings.request_id_secret.get_secret_value().encode()),
        on_served=served.record,
        rank_timeout_s=settings.rank_timeout_ms / 1000,
        breaker_failures=settings.breaker_failures,
        breaker_reset_s=settings.breaker_reset_s,
    )
    catalogue = CatalogueFollower(platform, recommender)
    stop = threading.Event()
    pusher = None
    if settings.push_interval_s and features.built:
        loop = asyncio.get_running_loop()

        def invalidate(users: set[str]) -> None:
            # The cache belongs to the event loop; the pusher's thread hands the deletes over to it.
            for user in users:
                asyncio.run_coroutine_threadsafe(recommender.invalidate(user), loop)

        pusher = _start_pusher(settings, platform, items, started_at, on_users=invalidate, on_items=catalogue.on_items)
    if settings.model_refresh_s:
        _every(settings.model_refresh_s, stop, models.refresh, "model-refresh")
    if settings.catalogue_refresh_s:
        _every(settings.catalogue_refresh_s, stop, catalogue.refresh, "catalogue-refresh")
    impressions = None
    if settings.served_load_s:
        # In the API process until a worker runs it (one loader per folder at a time: a file lock).
        impressions = ImpressionLoader(directory=settings.served_log_dir, sessions=platform.sessions)
        _every(settings.served_load_s, stop, impressions.load, "impression-loader")
    if settings.email_relay_s:
        # Emails are sent right after the write that queued them; this retries what failed then.
        mailer = make_email_sender(
            platform.settings.email_url.get_secret_value(),
            sender=platform.settings.email_from,
            sessions=platform.sessions,
        )
        _every(settings.email_relay_s, stop, lambda: relay_outbox(platform.sessions, mailer=mailer), "email-relay")
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
        pusher=pusher,
        impressions=impressions,
        catalogue=catalogue,
    )


def _start_pusher(
    settings: ServingSettings,
    platform: Platform,
    items: list[Item],
    started_at: datetime,
    *,
    on_users: Callable[[set[str]], None],
    on_items: Callable[[list[str]], None],
) -> FeaturePusher:
    from features.transforms import items_frame

    # A store of its own: pushes write through another connection than the request threads read with.
    store = open_store(
        data_dir=settings.data_dir,
        redis_url=settings.redis_url,
        project=settings.feast_project,
        redis_timeout_s=PUSH_TIMEOUT_S,
    )
    pusher = FeaturePusher(
        engine=platform.engine,
        store=store,
        items=items_frame(item.as_row() for item in items).select("item_id", "category", "level"),
        interval_s=settings.push_interval_s,
        started_at=started_at,
        on_users=on_users,
        on_items=on_items,
    )
    pusher.start()
    return pusher
