"""Candidate generators on simulated data with known structure, the sparse EASE, content reachability, merge."""

import numpy as np
import pandas as pd
import pytest

from models.generators import (
    BlendGenerator,
    CandidateGenerator,
    ContentGenerator,
    EASEGenerator,
    PopularityGenerator,
    RP3betaGenerator,
    SpectralGenerator,
    merge_candidates,
)
from models.generators.factors import ALSGenerator
from models.two_stage import TwoStageRanker
from training.interactions import Protocol, split_per_user
from training.movielens_like import simulate_interactions
from training.ranking_metrics import topk_metrics

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    interactions, items = simulate_interactions(n_users=300, n_items=200, n_interactions=12_000, seed=3)
    interactions["weight"] = 1.0
    train, test = split_per_user(interactions, Protocol.parse("random:0.75"), seed=1)
    return interactions, items, train, test


def ndcg(generator: CandidateGenerator, train: pd.DataFrame, test: pd.DataFrame) -> float:
    recs = generator.recommend(pd.unique(test["user_id"]).tolist(), 10)
    assert recs.merge(train, on=["user_id", "item_id"]).empty  # seen items removed
    return topk_metrics(recs, test, k=10)["ndcg@10"]


def test_popularity_beats_random(data) -> None:  # type: ignore[no-untyped-def]
    _, _, train, test = data
    popularity = ndcg(PopularityGenerator().fit(train), train, test)
    rng = np.random.default_rng(0)
    items = pd.unique(train["item_id"])
    users = pd.unique(test["user_id"])
    seen = set(zip(train["user_id"], train["item_id"], strict=True))
    rows = []
    for user in users:
        picks = [i for i in rng.permutation(items) if (user, i) not in seen][:10]
        rows += [{"user_id": user, "item_id": item, "rank": r + 1} for r, item in enumerate(picks)]
    assert popularity > topk_metrics(pd.DataFrame(rows), test)["ndcg@10"] + 0.05


@pytest.mark.parametrize(
    "make",
    [
        lambda: EASEGenerator(l2=100.0),
        lambda: EASEGenerator(l2=100.0, mode="sparse", neighbours=60),
        lambda: RP3betaGenerator(alpha=1.0, beta=0.5),
        lambda: ALSGenerator(factors=16, regularization=5.0, iterations=10),
        lambda: EASEGenerator(l2=30.0, window=5.0),
        lambda: EASEGenerator(l2=30.0, window=5.0, mode="sparse", neighbours=60),
        lambda: SpectralGenerator(factors=8),
        lambda: SpectralGenerator(factors=8, window=10.0),
        lambda: BlendGenerator([EASEGenerator(l2=100.0), SpectralGenerator(factors=8)], [1.0, 0.5]),
    ],
    ids=[
        *("ease", "ease-sparse", "rp3beta", "als", "ease-window", "ease-window-sparse"),
        *("spectral", "spectral-window", "blend"),
    ],
)
def test_collaborative_generators_beat_popularity(data, make) -> None:  # type: ignore[no-untyped-def]
    _, _, train, test = data
    popularity = ndcg(PopularityGenerator().fit(train), train, test)
    assert ndcg(make().fit(train), train, test) > popularity + 0.03


def test_content_generator_beats_popularity_when_attributes_carry_the_taste() -> None:
    # Known structure: each user mostly uses items of one favourite category, popularity is mild.
    rng = np.random.default_rng(4)
    items = pd.DataFrame({"category": [f"c{i % 8}" for i in range(160)]}, index=[f"i{i}" for i in range(160)])
    rows = []
    for user in range(200):
        favourite = user % 8
        pool = np.array([i for i in range(160) if i % 8 == favourite] * 4 + list(range(160)))
        picks = rng.choice(pool, size=40, replace=True)
        rows += [{"user_id": f"u{user}", "item_id": f"i{i}", "timestamp": 0} for i in np.unique(picks)[:20]]
    train, test = split_per_user(pd.DataFrame(rows), Protocol.parse("random:0.75"), seed=2)
    popularity = ndcg(PopularityGenerator().fit(train), train, test)
    assert ndcg(ContentGenerator().fit(train, items), train, test) > popularity + 0.05


def test_two_stage_beats_popularity(data) -> None:  # type: ignore[no-untyped-def]
    _, _, train, test = data
    history, held = split_per_user(train, Protocol.parse("random:0.75"), seed=5)
    model = TwoStageRanker(
        [EASEGenerator(l2=100.0), RP3betaGenerator(), PopularityGenerator()],
        per_source=30,
        params={"min_data_in_leaf": 20},
    )
    model.fit_ranker([(history, held)])
    model.fit_generators(train)
    recs = model.recommend(pd.unique(test["user_id"]).tolist(), 10)
    assert set(recs["source"]) == {"two_stage"}
    assert recs.groupby("user_id")["rank"].apply(list).map(lambda r: r == list(range(1, len(r) + 1))).all()
    popularity = ndcg(PopularityGenerator().fit(train), train, test)
    assert topk_metrics(recs, test)["ndcg@10"] > popularity + 0.03


def test_sparse_ease_agrees_with_dense_ease_on_a_small_catalogue(data) -> None:  # type: ignore[no-untyped-def]
    _, _, train, _ = data
    users = pd.unique(train["user_id"]).tolist()
    dense = EASEGenerator(l2=100.0, mode="dense").fit(train).recommend(users, 10)

    def overlap(neighbours: int) -> float:
        sparse = EASEGenerator(l2=100.0, mode="sparse", neighbours=neighbours).fit(train).recommend(users, 10)
        return len(dense.merge(sparse, on=["user_id", "item_id"])) / len(dense)

    # Every co-occurring item a neighbour: each column is EASE's own ridge regression, so nearly identical.
    assert overlap(10_000) >= 0.97
    # Half the catalogue as neighbours still keeps most of the top 10.
    assert overlap(100) >= 0.8


def test_auto_mode_switches_to_sparse_above_the_configured_catalogue_size(data) -> None:  # type: ignore[no-untyped-def]
    _, _, train, _ = data
    assert isinstance(EASEGenerator(max_dense_items=10_000).fit(train).weights, np.ndarray)
    assert not isinstance(EASEGenerator(max_dense_items=50).fit(train).weights, np.ndarray)


def test_a_never_seen_item_with_matching_attributes_is_reachable_through_content() -> None:
    interactions = pd.DataFrame(
        {"user_id": ["yogi"] * 3 + ["lifter"] * 3, "item_id": ["y1", "y2", "y3", "l1", "l2", "l3"], "timestamp": 0}
    )
    items = pd.DataFrame(
        {
            "category": ["yoga", "yoga", "yoga", "strength", "strength", "strength", "yoga", "strength"],
            "level": ["beginner"] * 3 + ["expert"] * 3 + ["beginner", "expert"],
        },
        index=["y1", "y2", "y3", "l1", "l2", "l3", "y-new", "l-new"],
    )
    content = ContentGenerator().fit(interactions, items)
    recs = content.recommend(["yogi", "lifter"], 1)
    assert recs.set_index("user_id")["item_id"].to_dict() == {"yogi": "y-new", "lifter": "l-new"}
    # Usage-only sources cannot reach it: nobody has used it.
    ease = EASEGenerator(l2=1.0).fit(interactions, items).recommend(["yogi"], 10)
    assert "y-new" not in set(ease[ease["score"] > 0]["item_id"])


def test_segment_popularity_serves_each_segment_its_own_items_and_unknown_users_the_global_list() -> None:
    interactions = pd.DataFrame(
        {
            "user_id": ["a", "b", "c", "d", "e", "f", "g"],
            "item_id": ["run", "run", "run", "yoga", "yoga", "mat", "new"],
            "timestamp": [0, 0, 0, 0, 0, 0, 1],
        }
    )
    users = pd.DataFrame({"goal": ["cardio"] * 3 + ["flexibility"] * 4, "level": "beginner"}, index=list("abcdefg"))
    model = PopularityGenerator(segment_columns=["goal", "level"]).fit(interactions, users_frame=users)
    recs = model.recommend(["d", "stranger"], 1, exclude_seen=False)
    assert recs.set_index("user_id")["item_id"].to_dict() == {"d": "yoga", "stranger": "run"}
    # A cold user described by the users frame gets their segment's list; a known user's new goal counts.
    asked = pd.DataFrame({"goal": ["flexibility", "cardio"], "level": "beginner"}, index=["newcomer", "d"])
    recs = model.recommend(["newcomer", "d"], 1, exclude_seen=False, users_frame=asked)
    assert recs.set_index("user_id")["item_id"].to_dict() == {"newcomer": "yoga", "d": "run"}


def test_segment_popularity_reads_the_segment_of_each_users_latest_interaction_without_a_users_frame() -> None:
    interactions = pd.DataFrame(
        {
            "user_id": ["a", "b", "c", "d", "d"],
            "item_id": ["run", "run", "yoga", "yoga", "mat"],
            "goal": ["cardio", "cardio", "flexibility", "cardio", "flexibility"],
            "timestamp": [0, 0, 0, 0, 5],
        }
    )
    model = PopularityGenerator(segment_columns=["goal"]).fit(interactions)
    assert model.recommend(["d", "a"], 1, exclude_seen=False).set_index("user_id")["item_id"].to_dict() == {
        "d": "yoga",
        "a": "run",
    }


def test_recency_half_life_prefers_what_is_used_lately() -> None:
    day = 86_400
    interactions = pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(5)],
            "item_id": ["old", "old", "old", "fresh", "fresh"],
            "timestamp": [0, 0, 0, 100 * day, 100 * day],
        }
    )
    assert PopularityGenerator().fit(interactions).recommend(["x"], 1)["item_id"].item() == "old"
    recent = PopularityGenerator(half_life_days=7.0).fit(interactions)
    assert recent.recommend(["x"], 1)["item_id"].item() == "fresh"


def test_merge_keeps_each_sources_score_and_rank() -> None:
    a = pd.DataFrame(
        {"user_id": ["u", "u"], "item_id": ["i1", "i2"], "score": [0.9, 0.5], "rank": [1, 2], "source": "a"}
    )
    b = pd.DataFrame({"user_id": ["u"], "item_id": ["i2"], "score": [3.0], "rank": [1], "source": "b"})
    merged = merge_candidates([a, b]).set_index("item_id")
    assert merged.loc["i2", ["a_score", "a_rank", "b_score", "b_rank", "n_sources"]].tolist() == [0.5, 2, 3.0, 1, 2]
    assert merged.loc["i1", "a_rank"] == 1 and np.isnan(merged.loc["i1", "b_rank"])
