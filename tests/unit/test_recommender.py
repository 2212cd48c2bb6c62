"""The ranking path with fakes for the model and the online store (pure logic): rules, slate, reasons, cache."""

import asyncio
import json
import time
from collections.abc import Mapping
from typing import Any

from support import CATEGORIES, FakeArms, FakeOnline, FakeRanker, fake_items, make_item

from serving.ranking.cache import MemoryCache
from serving.ranking.catalogue import Catalogue
from serving.ranking.model_holder import LoadedModel
from serving.ranking.path import RankingPath, Recommender
from serving.ranking.request_ids import RequestIds
from serving.ranking.rules import Access
from serving.schemas import RecommendationsPublic


def _path(users: Mapping[str, dict[str, Any]], *, access: Access | None = None, items=None) -> RankingPath:  # type: ignore[no-untyped-def]
    return RankingPath(
        catalogue=Catalogue(items or fake_items(), {"it-0": 5.0, "it-8": 4.0}),
        online=FakeOnline(users),
        access=(lambda _: access) if access else None,
        n_candidates=50,
    )


def _slate(path: RankingPath, user: str, k: int = 10) -> list[dict[str, Any]]:
    return path.rank(user, k=k, model=LoadedModel(version="1", ranker=FakeRanker()))


KETTLEBELL_BEGINNER = {"fitness_level": "beginner", "equipment": "kettlebells", "goal": "endurance"}


def test_rules_keep_out_what_the_user_cannot_or_should_not_do() -> None:
    now = time.time()
    recent = {
        "it-39": {"completed": now - 3600},
        "it-38": {"dismissed": now - 86400},
        "it-37": {"completed": now - 9e5},
    }
    path = _path({"u": {**KETTLEBELL_BEGINNER, "recent_items": json.dumps(recent)}})
    ids = [e["item_id"] for e in _slate(path, "u")]
    assert len(ids) == 10
    assert "it-1" not in ids  # needs a barbell the user lacks
    assert "it-2" not in ids  # premium without an entitlement
    assert "it-3" not in ids  # expert: two levels above a beginner
    assert "it-39" not in ids and "it-38" not in ids  # completed / dismissed within 7 days
    assert "it-37" in ids  # completed 10 days ago: allowed again


def test_an_entitlement_opens_premium_and_an_unlock_opens_onemake_item() -> None:
    user = {"u": KETTLEBELL_BEGINNER}
    items = [make_item(i, premium=True) if i > 30 else make_item(i) for i in range(40)]
    trial = [e["item_id"] for e in _slate(_path(user, access=Access(premium=True), items=items), "u")]
    assert "it-39" in trial
    unlocked = _slate(_path(user, access=Access(premium=False, unlocked=frozenset({"it-35"})), items=items), "u")
    premium_shown = {e["item_id"] for e in unlocked} & {f"it-{i}" for i in range(31, 40)}
    assert premium_shown == {"it-35"}


def test_at_most_three_of_a_category_and_never_short() -> None:
    path = _path({"u": KETTLEBELL_BEGINNER})
    slate = _slate(path, "u")
    categories = [path.catalogue.by_id[e["item_id"]].category for e in slate]
    assert len(slate) == 10 and max(categories.count(c) for c in set(categories)) <= 3
    # Only two categories feasible (everything else needs a barbell): the cap gives way, the slate stays full.
    few = [make_item(i, category=("cardio" if i % 2 else "strength")) for i in range(12)]
    few += [make_item(100 + i, equipment=("barbell",)) for i in range(10)]
    short = _slate(_path({"u": KETTLEBELL_BEGINNER}, items=few), "u")
    assert len(short) == 10 and all(int(e["item_id"][3:]) < 100 for e in short)


def test_low_recovery_demotes_hard_sessions_and_says_why() -> None:
    items = [make_item(i, category=CATEGORIES[i % 3]) for i in range(6) if i != 4] + [
        make_item(4, category="powerlifting")
    ]
    tired = {**KETTLEBELL_BEGINNER, "fitness_level": "intermediate", "recovery_score": 0.2, "sleep_7d_avg": 330.0}
    slate = _slate(_path({"u": tired}, items=items), "u", k=6)
    assert slate[-1]["item_id"] == "it-4"  # the hard one goes last although it scores above it-0..3
    assert slate[0]["reason"] == "Light session: your sleep was short this week (5.5 h a night)"
    fresh = {**tired, "recovery_score": 0.9}
    assert _slate(_path({"u": fresh}, items=items), "u", k=6)[1]["item_id"] == "it-4"


def test_cold_and_unknown_users_get_a_full_feasible_slate() -> None:
    slate = _slate(_path({}), "nobody")  # nothing online: beginner, equipment not filtered, no premium
    ids = [e["item_id"] for e in slate]
    assert len(ids) == 10 and "it-2" not in ids and "it-3" not in ids


def test_explain_gives_the_rankers_contributions_with_values() -> None:
    path = _path({"u": KETTLEBELL_BEGINNER})
    slate = path.rank("u", k=3, model=LoadedModel(version="1", ranker=FakeRanker()), explain=True)
    top = slate[0]
    assert top["explanation"] == [
        {"feature": "quality", "value": float(top["item_id"][3:]), "contribution": top["score"]}
    ]


def test_answers_are_cached_per_user_and_invalidated_together() -> None:
    ranker, served = FakeRanker(), []  # type: ignore[var-annotated]
    rec = Recommender(
        path=_path({"u-1": KETTLEBELL_BEGINNER}),
        models=FakeArms(ranker),  # type: ignore[arg-type]
        cache=MemoryCache(),
        cache_prefix="t:",
        cache_ttl_s=300,
        request_ids=RequestIds(b"k" * 32),
        on_served=lambda **kw: served.append(kw),
    )
    first = RecommendationsPublic.model_validate_json(asyncio.run(rec.answer("u-1", k=3)))
    assert first.cached is False and first.model_version == "v3" and first.count == 3 and first.arm == "champion"
    second = RecommendationsPublic.model_validate_json(asyncio.run(rec.answer("u-1", k=3)))
    assert second.cached is True and second.data == first.data and ranker.calls == 1
    assert second.request_id != first.request_id and rec.request_ids.verify(second.request_id, "u-1")
    other_k = RecommendationsPublic.model_validate_json(asyncio.run(rec.answer("u-1", k=4)))
    assert other_k.cached is False
    asyncio.run(rec.invalidate("u-1"))
    assert RecommendationsPublic.model_validate_json(asyncio.run(rec.answer("u-1", k=3))).cached is False
    assert RecommendationsPublic.model_validate_json(asyncio.run(rec.answer("u-1", k=4))).cached is False
    assert [s["cached"] for s in served] == [False, True, False, False, False]
    assert {s["arm"] for s in served} == {"champion"}


def test_no_model_answers_conservative_popularity() -> None:
    rec = Recommender(
        path=_path({}),
        models=FakeArms(None),  # type: ignore[arg-type]
        cache=MemoryCache(),
        cache_prefix="t:",
        cache_ttl_s=300,
        request_ids=RequestIds(b"k" * 32),
    )
    answer = RecommendationsPublic.model_validate_json(asyncio.run(rec.answer("u-1", k=3)))
    assert answer.model_version == "fallback:popularity" and answer.fallback_reason == "model_unavailable"
    # it-0 and it-8 are the most popular; nothing premium, expert or needing equipment.
    assert [d.item_id for d in answer.data][:2] == ["it-0", "it-8"]
    assert not {d.item_id for d in answer.data} & {"it-1", "it-2", "it-3"}
