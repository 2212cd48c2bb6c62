"""The recommendation path with fakes for the model and the features (pure logic)."""

import asyncio
import json

import numpy as np
import pandas as pd

from platform_api.catalogue.service import Item
from serving.ranking.cache import MemoryCache
from serving.ranking.model_holder import LoadedModel
from serving.ranking.path import Catalogue, Recommender
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


class FakePackage(FakeRanker):
    """A model with candidate sources, as the packaged recommender presents them to serving."""

    user_attribute_refs = {"goal": "user_profile:goal"}

    def __init__(self) -> None:
        super().__init__()
        self.described: list[object] = []

    def knows_user(self, user_id: str) -> bool:
        return user_id != "u-new"

    def users_frame(self, rows: pd.DataFrame) -> pd.DataFrame:
        return rows.rename(columns={"goal": "goal"})

    def candidates(self, users, users_frame=None) -> pd.DataFrame:  # type: ignore[no-untyped-def]
        self.described.append(None if users_frame is None else users_frame["goal"].tolist())
        items = ["it-3", "it-99", "it-5", "it-gone", "it-4"]  # it-gone left the catalogue
        return pd.DataFrame(
            {"user_id": users[0], "item_id": items, "ease_rank": [2.0, 2.0, 1.0, 4.0, np.nan], "n_sources": 1.0}
        )

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        assert {"ease_rank", "n_sources", "quality"} <= set(frame.columns)  # source columns beside the features
        return super().score(frame) - frame["ease_rank"].fillna(10).to_numpy()

    def slate(self, item_ids, scores, k=None):  # type: ignore[no-untyped-def]
        return np.argsort(-scores, kind="stable")[: (k or 10) - 1]  # a policy that shows one fewer


def test_candidates_come_from_the_model_with_its_source_columns() -> None:
    model, served = FakePackage(), []  # type: ignore[var-annotated]
    rec = _recommender(None, served)
    rec._models = FakeHolder(model)  # type: ignore[assignment]
    attributes: list[tuple[str, dict[str, str]]] = []

    def read(user_id: str, refs: dict[str, str]) -> pd.DataFrame:
        attributes.append((user_id, refs))
        return pd.DataFrame({"goal": ["mobility"]}, index=[user_id])

    rec.user_attributes = read  # type: ignore[assignment]
    answer = RecommendationsPublic.model_validate_json(asyncio.run(rec.answer("u-1", k=3)))
    # it-99 needs a barbell (filtered), it-gone is not in the catalogue; scores quality - ease_rank.
    assert [d.item_id for d in answer.data] == ["it-5", "it-3"]  # the model's slate policy: k - 1
    assert model.described == [None] and attributes == []  # a known user is not described
    RecommendationsPublic.model_validate_json(asyncio.run(rec.answer("u-new", k=3)))
    assert attributes == [("u-new", {"goal": "user_profile:goal"})] and model.described[-1] == ["mobility"]
