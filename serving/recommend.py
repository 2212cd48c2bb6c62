"""The recommendation path: cache → candidates → online features → scores → filters → top-k."""

import json
import uuid
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from platform_api.catalogue.service import Item
from platform_api.errors import ApiError
from serving.cache import Cache
from serving.model_holder import ModelHolder
from serving.reasons import reason_for
from serving.schemas import RecommendationPublic, RecommendationsPublic

# (user_id, item_ids) → one row per item with the model's feature columns, same order.
FeatureFetcher = Callable[[str, Sequence[str]], pd.DataFrame]
EQUIPMENT_FIT = "equipment_fit"
MIN_EQUIPMENT_FIT = 0.5


class Catalogue:
    """Items in memory with a popularity order for candidate generation."""

    def __init__(self, items: Sequence[Item], popularity: dict[str, float]) -> None:
        self.by_id = {i.item_id: i for i in items}
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


class Recommender:
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
    ) -> None:
        self.catalogue = catalogue
        self._fetch = fetch_features
        self._models = models
        self._cache = cache
        self._prefix = cache_prefix
        self._ttl = cache_ttl_s
        self._n = n_candidates
        self._on_served = on_served

    def recommend(self, user_id: str, *, k: int, surface: str = "home") -> RecommendationsPublic:
        model = self._models.current
        if model is None:
            raise ApiError(503, "no model is registered yet: run `fitrec train`", code="model_unavailable")
        key = f"{self._prefix}rec:{model.label}:{user_id}:{k}"
        cached = self._cache.get(key)
        if cached is not None:
            data = [RecommendationPublic(**row) for row in json.loads(cached)]
            cached_hit = True
        else:
            data = self.rank(user_id, k=k, ranker=model.ranker)
            self._cache.set(key, json.dumps([d.model_dump() for d in data]).encode(), self._ttl)
            cached_hit = False
        # Each request is its own ranking group, even when the slate comes from the cache.
        request_id = uuid.uuid4().hex
        if self._on_served is not None:
            self._on_served(
                request_id=request_id,
                user_id=user_id,
                item_ids=[d.item_id for d in data],
                scores=[d.score for d in data],
                model_version=model.label,
                surface=surface,
            )
        return RecommendationsPublic(
            data=data,
            count=len(data),
            user_id=user_id,
            request_id=request_id,
            model_version=model.label,
            cached=cached_hit,
        )

    def rank(self, user_id: str, *, k: int, ranker) -> list[RecommendationPublic]:  # type: ignore[no-untyped-def]
        candidates = self.catalogue.candidates(self._n)
        if not candidates:
            return []
        frame = self._fetch(user_id, candidates)
        scores = np.asarray(ranker.score(frame), dtype=float)
        scores[~feasible(frame)] = -np.inf
        order = np.argsort(-scores, kind="stable")[:k]
        top = order[np.isfinite(scores[order])]
        drivers = ranker.explain(frame.iloc[top])
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
