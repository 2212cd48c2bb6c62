"""The recommendation path with fakes for the model and the features (pure logic)."""

import asyncio
import json

import numpy as np
import pandas as pd

from platform_api.catalogue.service import Item
from serving.cache import MemoryCache
from serving.model_holder import LoadedModel
from serving.recommend import Catalogue, Recommender
from serving.schemas import RecommendationsPublic


def _item(i: int, equipment: tuple[str, ...] = ("body only",)) -> Item:
    return Item(
        item_id=f"it-{i}",
        item_type="plan",
        title=f"Item {i}",
        category="cardio",
        level="beginner",
        goal="endurance",
        equipment=equipment,
        muscles=(),
        duration_min=30,
        premium=False,
    )


class FakeRanker:
    def __init__(self) -> None:
        self.calls = 0

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        self.calls += 1
        return frame["quality"].to_numpy(dtype=float)

    def explain(self, frame: pd.DataFrame, *, relative: bool = False) -> list[str]:
        return ["category_affinity"] * len(frame)


class FakeHolder:
    def __init__(self, ranker: FakeRanker | None) -> None:
        self.current = LoadedModel(version="3", ranker=ranker) if ranker else None


def _recommender(ranker: FakeRanker | None, served: list[dict]) -> Recommender:  # type: ignore[type-arg]
    items = [_item(i) for i in range(20)] + [_item(99, equipment=("barbell",))]

    def fetch(user_id: str, item_ids) -> pd.DataFrame:  # type: ignore[no-untyped-def]
        return pd.DataFrame(
            {
                "item_id": item_ids,
                "quality": [100.0 if i == "it-99" else float(i.split("-")[1]) for i in item_ids],
                "equipment_fit": [0.0 if i == "it-99" else 1.0 for i in item_ids],
            }
        )

    return Recommender(
        catalogue=Catalogue(items, {"it-0": 5.0}),
        fetch_features=fetch,
        models=FakeHolder(ranker),
        cache=MemoryCache(),
        cache_prefix="t:",  # type: ignore[arg-type]
        cache_ttl_s=300,
        n_candidates=50,
        on_served=lambda **kw: served.append(kw),
    )


def test_top_k_by_score_filters_infeasible_and_caches() -> None:
    ranker, served = FakeRanker(), []
    rec = _recommender(ranker, served)
    first = RecommendationsPublic.model_validate_json(asyncio.run(rec.answer("u-1", k=3)))
    assert [d.item_id for d in first.data] == ["it-19", "it-18", "it-17"]  # it-99 scores highest but needs a barbell
    assert first.cached is False and first.model_version == "v3" and first.count == 3
    assert first.fallback_reason is None
    assert first.data[0].reason == "Because you like cardio"
    second = RecommendationsPublic.model_validate_json(asyncio.run(rec.answer("u-1", k=3)))
    assert second.cached is True and second.data == first.data and ranker.calls == 1
    assert second.request_id != first.request_id
    assert [[d["item_id"] for d in json.loads(s["data_json"])] for s in served] == [["it-19", "it-18", "it-17"]] * 2
    assert [s["request_id"] for s in served] == [first.request_id, second.request_id]


def test_candidates_follow_popularity() -> None:
    catalogue = Catalogue([_item(i) for i in range(5)], {"it-3": 9.0, "it-1": 4.0})
    assert catalogue.candidates(3) == ["it-3", "it-1", "it-0"]


def test_no_model_answers_popularity() -> None:
    served: list[dict] = []  # type: ignore[type-arg]
    answer = RecommendationsPublic.model_validate_json(asyncio.run(_recommender(None, served).answer("u-1", k=3)))
    assert answer.model_version == "fallback:popularity" and answer.fallback_reason == "model_unavailable"
    assert [d.item_id for d in answer.data] == ["it-0", "it-1", "it-10"]  # it-0 is the most popular
    assert served[0]["model_version"] == "fallback:popularity"
