"""Everything the serving app holds for its lifetime, built once at start-up."""

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
from feast import FeatureStore

from features.postgres import is_postgres
from features.retrieval import OnlineFeatureReader
from features.store import open_store
from platform_api.catalogue.service import Item, list_items
from platform_api.email.factory import make_email_sender
from platform_api.outbox import relay_outbox
from platform_api.runtime import Platform, open_platform
from serving.auth import KeyCache
from serving.config import ServingSettings
from serving.feature_push import FeaturePusher
from serving.ranking.cache import Cache, make_cache
from serving.ranking.model_holder import ModelHolder
from serving.ranking.path import Catalogue, FeatureFetcher, FeaturesUnavailable, Recommender, UserAttributes
from serving.ranking.served_log import ServedLog

log = logging.getLogger(__name__)
PUSH_TIMEOUT_S = 5.0  # the pusher writes in the background: a frozen Redis may stall a push, not hang it
POPULARITY_FEATURE = "item_popularity_28d"


@dataclass
class ServingState:
    settings: ServingSettings
    platform: Platform
    cache: Cache
    models: ModelHolder
    recommender: Recommender
    served: ServedLog
    keys: KeyCache
    store: FeatureStore | None
    feature_problem: str | None  # why recommendations cannot use the online features (None: they can)
    _stop: threading.Event
    pusher: FeaturePusher | None = None

    def close(self) -> None:
        """Stop the background work and free what is held (the async cache closes in `aclose`)."""
        self._stop.set()
        if self.pusher is not None:
            self.pusher.stop()
        self.served.close()
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


@dataclass
class Features:
    reader: FeatureFetcher
    popularity: dict[str, float]
    problem: str | None
    built: bool = True
    user_attributes: UserAttributes | None = None


def _user_attributes(store: FeatureStore) -> UserAttributes:
    """Reads a user's stored attributes (the online features the model names) to describe a user it never saw.

    A failed read describes nobody (None): the model's candidates for an undescribed user are its
    general ones, and the ranking goes on.
    """

    def read(user_id: str, refs: Mapping[str, str]) -> pd.DataFrame | None:
        try:
            found = store.get_online_features(features=list(refs.values()), entity_rows={"user_id": [user_id]})
        except Exception:  # noqa: BLE001 - an unreadable profile only makes the candidates less personal
            log.warning("user attributes of %s cannot be read: general candidates", user_id, exc_info=True)
            return None
        values = found.to_dict()
        names = [ref.split(":", 1)[-1] for ref in refs.values()]
        return pd.DataFrame({n: values.get(n, [None])[:1] for n in names}, index=pd.Index([user_id], name="user_id"))

    return read


def _features_missing(reason: str) -> FeatureFetcher:
    def fetch(user_id: str, item_ids: Sequence[str]) -> pd.DataFrame:
        raise FeaturesUnavailable(reason)

    return fetch


def _open_features(settings: ServingSettings, items: list[Item]) -> tuple[FeatureStore | None, Features]:
    """The feature store and popularity, or what is missing and why (never raises: serving goes on)."""
    try:
        store = open_store(
            data_dir=settings.data_dir,
            redis_url=settings.redis_url,
            project=settings.feast_project,
            offline_url=settings.database_url if is_postgres(settings.database_url) else None,
            redis_timeout_s=settings.online_timeout_ms / 1000,
        )
        built = bool(store.list_feature_views())
    except Exception as exc:  # noqa: BLE001 - a missing or broken store degrades answers to popularity
        log.exception("the feature store cannot be opened: recommendations fall back to popularity")
        return None, Features(_features_missing(str(exc)), {}, f"feature store cannot be opened: {exc}", built=False)
    if not built:
        problem = "the feature store is empty: run `fitrec features build`"
        log.warning("%s; recommendations fall back to popularity", problem)
        return store, Features(_features_missing(problem), {}, problem, built=False)
    reader = OnlineFeatureReader(store)
    popularity: dict[str, float] = {}
    unreachable: str | None = None
    if items:
        # Candidate order: recent popularity as materialized in the online store (also warms the item rows).
        try:
            popularity = reader("", [i.item_id for i in items])[POPULARITY_FEATURE].to_dict()
        except Exception as exc:  # noqa: BLE001 - an unreachable online store must not stop start-up
            unreachable = f"online store unreachable at start-up (candidates in catalogue order): {exc}"
            log.exception("%s", unreachable)
    return store, Features(reader, popularity, unreachable, user_attributes=_user_attributes(store))


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
    )
    models = ModelHolder(tracking_uri=settings.tracking_uri, name=settings.model_name, alias=settings.model_alias)
    models.refresh()
    served = ServedLog(settings.served_log_dir, flush_s=settings.served_flush_s)
    served.start()
    recommender = Recommender(
        catalogue=Catalogue(items, features.popularity),
        fetch_features=features.reader,
        models=models,
        cache=cache,
        cache_prefix=settings.cache_prefix,
        cache_ttl_s=settings.cache_ttl_s,
        n_candidates=settings.candidates,
        on_served=served.record,
        rank_timeout_s=settings.rank_timeout_ms / 1000,
        breaker_failures=settings.breaker_failures,
        breaker_reset_s=settings.breaker_reset_s,
        user_attributes=features.user_attributes,
    )
    pusher = None
    if settings.push_interval_s and features.built:
        pusher = _start_pusher(settings, platform, items, started_at)
    stop = threading.Event()
    if settings.model_refresh_s:
        _every(settings.model_refresh_s, stop, models.refresh, "model-refresh")
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
    )


def _start_pusher(
    settings: ServingSettings, platform: Platform, items: list[Item], started_at: datetime
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
    )
    pusher.start()
    return pusher
