"""The recommendation path: cache → candidates → online features → scores → filters → top-k."""

import json
import uuid
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from platform_api.catalogue.service import Item
from platform_api.errors import ApiError
from serving.cache import Cache
from serving.model_holder import LoadedModel, ModelHolder
from serving.reasons import reason_for
from serving.schemas import RecommendationPublic

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

    def lookup(self, user_id: str, *, k: int) -> tuple[LoadedModel, bytes | None]:
        """The serving model and, on a cache hit, the cached slate."""
        model = self._models.current
        if model is None:
            raise ApiError(503, "no model is registered yet: run `fitrec train`", code="model_unavailable")
        return model, self._cache.get(self._key(model, user_id, k))

    def compute(self, user_id: str, *, k: int, model: LoadedModel) -> bytes:
        """Rank, cache and return the slate."""
        data = self.rank(user_id, k=k, ranker=model.ranker)
        data_json = json.dumps([d.model_dump() for d in data], separators=(",", ":")).encode()
        # A slate is "<count>\n<JSON of the data list>": answers splice it without decoding it.
        slate = b"%d\n" % len(data) + data_json
        self._cache.set(self._key(model, user_id, k), slate, self._ttl)
        return slate

    def respond(self, user_id: str, *, model: LoadedModel, slate: bytes, cached: bool, surface: str) -> bytes:
        """The response body (RecommendationsPublic), spliced from the slate's JSON without re-encoding it."""
        count, _, data_json = slate.partition(b"\n")
        # Each request is its own ranking group, even when the slate comes from the cache.
        request_id = uuid.uuid4().hex
        if self._on_served is not None:
            self._on_served(
                request_id=request_id, user_id=user_id, data_json=data_json, model_version=model.label, surface=surface
            )
        tail = json.dumps(
            {"user_id": user_id, "request_id": request_id, "model_version": model.label, "cached": cached},
            separators=(",", ":"),
        )
        return b'{"data":' + data_json + b',"count":' + count + b"," + tail[1:].encode()

    def recommend(self, user_id: str, *, k: int, surface: str = "home") -> bytes:
        """The whole path in one call (the route splits it to keep ranking off the event loop)."""
        model, slate = self.lookup(user_id, k=k)
        cached = slate is not None
        if slate is None:
            slate = self.compute(user_id, k=k, model=model)
        return self.respond(user_id, model=model, slate=slate, cached=cached, surface=surface)

    def _key(self, model: LoadedModel, user_id: str, k: int) -> str:
        return f"{self._prefix}rec:{model.label}:{user_id}:{k}"

    def rank(self, user_id: str, *, k: int, ranker) -> list[RecommendationPublic]:  # type: ignore[no-untyped-def]
        candidates = self.catalogue.candidates(self._n)
        if not candidates:
            return []
        frame = self._fetch(user_id, candidates)
        scores = np.asarray(ranker.score(frame), dtype=float)
        scores[~feasible(frame)] = -np.inf
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
