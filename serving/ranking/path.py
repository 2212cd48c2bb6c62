"""The recommendation path: cache → candidates → online features → scores → filters → slate.

Candidates come from the packaged model (`candidates(users, users_frame)`: every source it holds, with
each source's scores as ranker features); the online features come from the feature store; the model
scores, the business filter drops what the user cannot do, the model's slate policy picks the top-k and
the model explains each pick. Nothing here knows which algorithms the model holds. A model without
candidate sources (an older or a stand-in model) ranks the catalogue's most popular items instead.
"""

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
import numpy as np
import pandas as pd
from purgatory import AsyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from platform_api.catalogue.service import Item
from serving.ranking.cache import Cache
from serving.ranking.model_holder import LoadedModel, ModelHolder
from serving.ranking.reasons import reason_for
from serving.ranking.schemas import RecommendationPublic

# (user_id, item_ids) → one row per item with the model's feature columns, same order.
FeatureFetcher = Callable[[str, Sequence[str]], pd.DataFrame]
# (user_id, {column: "view:feature"}) → the user's stored attribute values (one row indexed by user_id,
# columns named by feature), or None when they cannot be read: describes users the model never saw.
UserAttributes = Callable[[str, Mapping[str, str]], pd.DataFrame | None]
EQUIPMENT_FIT = "equipment_fit"
MIN_EQUIPMENT_FIT = 0.5
log = logging.getLogger(__name__)


class Catalogue:
    """The catalogue's items in memory, with the popularity order fallback answers (and models without
    candidate sources) use."""

    def __init__(self, items: Sequence[Item], popularity: dict[str, float]) -> None:
        self.by_id = {i.item_id: i for i in items}
        self.popularity = popularity
        self.ranked = sorted(self.by_id, key=lambda i: (-popularity.get(i, 0.0), i))

    def candidates(self, n: int) -> list[str]:
        return self.ranked[:n]


def feasible(frame: pd.DataFrame) -> np.ndarray:
    """Business filter: never recommend what needs mostly equipment the user said they lack.

    equipment_fit is the share of the item's equipment the user has; users without a
    profile get the neutral 0.5 and are not filtered.
    """
    if EQUIPMENT_FIT not in frame.columns:
        return np.ones(len(frame), dtype=bool)
    fit = pd.to_numeric(frame[EQUIPMENT_FIT], errors="coerce").to_numpy(dtype=float)
    return ~(fit < MIN_EQUIPMENT_FIT)


class FeaturesUnavailable(Exception):
    """The online features cannot be read (not built yet, or the store is missing)."""


# Why a fallback served an answer (RecommendationsPublic.fallback_reason).
MODEL_UNAVAILABLE = "model_unavailable"
FEATURES_UNAVAILABLE = "features_unavailable"
RANKING_TIMEOUT = "ranking_timeout"
RANKING_FAILED = "ranking_failed"
POPULARITY_VERSION = "fallback:popularity"
POPULARITY_REASON = "Popular this week"
RANKING_CIRCUIT = "ranking"


class Recommender:
    """The whole answer: a cached slate, or a ranked one, or popularity when ranking cannot answer.

    Ranking runs in worker threads with a timeout behind a circuit breaker: a failing or hung
    feature store or model degrades the answer to popularity, never to an error, and while
    the circuit is open no more threads are tied up waiting on it.
    """

    def __init__(
        self,
        *,
        catalogue: Catalogue,
        fetch_features: FeatureFetcher,
        models: ModelHolder,
        cache: Cache,
        cache_prefix: str,
        cache_ttl_s: int,
        n_candidates: int,
        on_served: Callable[..., None] | None = None,
        rank_timeout_s: float = 0.5,
        breaker_failures: int = 3,
        breaker_reset_s: float = 5.0,
        rank_threads: int = 8,
        user_attributes: UserAttributes | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.user_attributes = user_attributes
        self.fetch_features = fetch_features
        self._models = models
        self._cache = cache
        self._prefix = cache_prefix
        self._ttl = cache_ttl_s
        self._n = n_candidates
        self._on_served = on_served
        self._timeout = rank_timeout_s
        self._breakers = AsyncCircuitBreakerFactory(default_threshold=breaker_failures, default_ttl=breaker_reset_s)
        # Ranking threads of their own: hung rankings can never starve the platform's sync routes.
        self._threads = anyio.CapacityLimiter(rank_threads)
        self._last_failure = RANKING_FAILED
        self._popular: dict[int, bytes] = {}

    async def answer(self, user_id: str, *, k: int, surface: str = "home") -> bytes:
        """The response body (RecommendationsPublic) of a user's top-k."""
        model = self._models.current
        if model is None:
            return self._fallback(user_id, k=k, surface=surface, reason=MODEL_UNAVAILABLE)
        key = self._key(model, user_id, k)
        slate = await self._cache.get(key)
        if slate is not None:
            return self.respond(user_id, version=model.label, slate=slate, cached=True, surface=surface)
        try:
            async with await self._breakers.get_breaker(RANKING_CIRCUIT):
                slate = await asyncio.wait_for(
                    anyio.to_thread.run_sync(
                        self.compute, user_id, k, model, limiter=self._threads, abandon_on_cancel=True
                    ),
                    self._timeout,
                )
        except OpenedState:
            reason = self._last_failure
        except Exception as exc:  # noqa: BLE001 - any failure of ranking degrades the answer to popularity
            reason = _failure_reason(exc)
            self._last_failure = reason
            log.warning("ranking failed for %s (%s): popularity answers", user_id, reason, exc_info=exc)
        else:
            await self._cache.set(key, slate, self._ttl)
            return self.respond(user_id, version=model.label, slate=slate, cached=False, surface=surface)
        return self._fallback(user_id, k=k, surface=surface, reason=reason)

    def compute(self, user_id: str, k: int, model: LoadedModel) -> bytes:
        """Rank and return the slate (blocking: runs in a worker thread)."""
        return _slate(self.rank(user_id, k=k, ranker=model.ranker))

    def respond(
        self,
        user_id: str,
        *,
        version: str,
        slate: bytes,
        cached: bool,
        surface: str,
        fallback_reason: str | None = None,
    ) -> bytes:
        """The response body (RecommendationsPublic), spliced from the slate's JSON without re-encoding it."""
        count, _, data_json = slate.partition(b"\n")
        # Each request is its own ranking group, even when the slate comes from the cache.
        request_id = uuid.uuid4().hex
        if self._on_served is not None:
            self._on_served(
                request_id=request_id, user_id=user_id, data_json=data_json, model_version=version, surface=surface
            )
        tail = json.dumps(
            {
                "user_id": user_id,
                "request_id": request_id,
                "model_version": version,
                "cached": cached,
                "fallback_reason": fallback_reason,
            },
            separators=(",", ":"),
        )
        return b'{"data":' + data_json + b',"count":' + count + b"," + tail[1:].encode()

    def _fallback(self, user_id: str, *, k: int, surface: str, reason: str) -> bytes:
        slate = self._popular.get(k)
        if slate is None:
            slate = self._popular[k] = _slate(self.popular(k))
        return self.respond(
            user_id, version=POPULARITY_VERSION, slate=slate, cached=False, surface=surface, fallback_reason=reason
        )

    def popular(self, k: int) -> list[RecommendationPublic]:
        """The catalogue's most popular items: the answer when the model cannot rank."""
        return [
            RecommendationPublic(
                item_id=item.item_id,
                item_type=item.item_type,
                title=item.title,
                score=round(self.catalogue.popularity.get(item.item_id, 0.0), 6),
                reason=POPULARITY_REASON,
            )
            for item in (self.catalogue.by_id[i] for i in self.catalogue.candidates(k))
        ]

    def _key(self, model: LoadedModel, user_id: str, k: int) -> str:
        return f"{self._prefix}rec:{model.label}:{user_id}:{k}"

    def candidates(self, user_id: str, ranker: Any) -> tuple[list[str], pd.DataFrame | None]:
        """Candidate item ids and the columns the model adds to their features (None: no such columns)."""
        if not callable(getattr(ranker, "candidates", None)):
            return self.catalogue.candidates(self._n), None
        users_frame = None
        refs = getattr(ranker, "user_attribute_refs", None)
        if refs and self.user_attributes is not None and not ranker.knows_user(user_id):
            stored = self.user_attributes(user_id, refs)
            users_frame = None if stored is None else ranker.users_frame(stored)
        found = ranker.candidates([user_id], users_frame)
        # Only what the catalogue still offers, at most the configured number.
        ids = found["item_id"].tolist()
        offered = np.fromiter((i in self.catalogue.by_id for i in ids), dtype=bool, count=len(ids))
        if not offered.all():
            found = found[offered]
            ids = found["item_id"].tolist()
        found = found.iloc[: self._n]
        return ids[: self._n], found.drop(columns=["user_id", "item_id"])

    def rank(self, user_id: str, *, k: int, ranker: Any) -> list[RecommendationPublic]:
        candidates, extra = self.candidates(user_id, ranker)
        if not candidates:
            return []
        frame = self.fetch_features(user_id, candidates)
        if extra is not None:
            frame = pd.concat([frame, extra.set_axis(frame.index)], axis=1)
        scores = np.asarray(ranker.score(frame), dtype=float)
        scores[~feasible(frame)] = -np.inf
        if callable(getattr(ranker, "slate", None)):
            order = np.asarray(ranker.slate(candidates, scores, k), dtype=np.int64)
        else:
            order = np.argsort(-scores, kind="stable")[:k]
        top = order[np.isfinite(scores[order])]
        drivers = ranker.explain(frame.iloc[top], relative=True)
        out = []
        for idx, driver in zip(top, drivers, strict=True):
            item = self.catalogue.by_id[candidates[idx]]
            out.append(
                RecommendationPublic(
                    item_id=item.item_id,
                    item_type=item.item_type,
                    title=item.title,
                    score=round(float(scores[idx]), 6),
                    reason=reason_for(driver, category=item.category),
                )
            )
        return out


def _slate(data: list[RecommendationPublic]) -> bytes:
    # A slate is "<count>\n<JSON of the data list>": answers splice it without decoding it.
    data_json = json.dumps([d.model_dump() for d in data], separators=(",", ":")).encode()
    return b"%d\n" % len(data) + data_json


def _failure_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return RANKING_TIMEOUT
    if isinstance(exc, FeaturesUnavailable):
        return FEATURES_UNAVAILABLE
    return RANKING_FAILED
