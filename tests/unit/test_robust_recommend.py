"""The ranking path degrades to popularity, never to an error, when features or the model fail."""

import asyncio
import threading

import pandas as pd
import pytest
from support import FakeArms, FakeOnline, FakeRanker, make_item

from serving.ranking.cache import MemoryCache
from serving.ranking.catalogue import Catalogue
from serving.ranking.path import FeaturesUnavailable, RankingPath, Recommender
from serving.ranking.request_ids import RequestIds
from serving.schemas import RecommendationsPublic

pytestmark = pytest.mark.robustness


class FailingOnline(FakeOnline):
    def __init__(self, fetch) -> None:  # type: ignore[no-untyped-def]
        super().__init__({})
        self._fetch = fetch

    def assemble(self, user, item_ids) -> pd.DataFrame:  # type: ignore[no-untyped-def]
        return self._fetch(user, item_ids)


def _recommender(fetch, *, timeout_s: float = 2.0) -> Recommender:  # type: ignore[no-untyped-def]
    path = RankingPath(
        catalogue=Catalogue([make_item(i) for i in range(20)], {"it-7": 3.0}), online=FailingOnline(fetch)
    )
    return Recommender(
        path=path,
        models=FakeArms(FakeRanker()),  # type: ignore[arg-type]
        cache=MemoryCache(),
        cache_prefix="t:",
        cache_ttl_s=300,
        request_ids=RequestIds(b"k" * 32),
        rank_timeout_s=timeout_s,
        breaker_failures=2,
        breaker_reset_s=60,
    )


def _answer(rec: Recommender, user: str = "u-1") -> RecommendationsPublic:
    return RecommendationsPublic.model_validate_json(asyncio.run(rec.answer(user, k=3)))


def test_a_failing_feature_store_answers_popularity_and_opens_the_circuit() -> None:
    calls = []

    def fetch(user_id, item_ids) -> pd.DataFrame:  # type: ignore[no-untyped-def]
        calls.append(user_id)
        raise ConnectionError("online store down")

    rec = _recommender(fetch)
    answers = [_answer(rec, f"u-{i}") for i in range(5)]
    assert {a.model_version for a in answers} == {"fallback:popularity"}
    assert {a.fallback_reason for a in answers} == {"ranking_failed"}
    assert answers[0].data[0].item_id == "it-7" and answers[0].count == 3
    assert len(calls) == 2  # then the circuit is open: no more calls into the failing store


def test_missing_features_say_so() -> None:
    def fetch(user_id, item_ids) -> pd.DataFrame:  # type: ignore[no-untyped-def]
        raise FeaturesUnavailable("the feature store is empty")

    assert _answer(_recommender(fetch)).fallback_reason == "features_unavailable"


def test_a_hung_feature_store_times_out_to_popularity() -> None:
    release = threading.Event()

    def fetch(user_id, item_ids) -> pd.DataFrame:  # type: ignore[no-untyped-def]
        release.wait(30)
        raise ConnectionError("gave up")

    try:
        answer = _answer(_recommender(fetch, timeout_s=0.05))
    finally:
        release.set()
    assert answer.model_version == "fallback:popularity" and answer.fallback_reason == "ranking_timeout"
