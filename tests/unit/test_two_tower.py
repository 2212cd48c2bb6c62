"""The two-tower generator on simulated data with known structure: recall against popularity, the approximate
index against exact search, cold users and never-used items from side features, save/load."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.ann import InnerProductIndex
from models.generators import PopularityGenerator
from models.generators.persist import load_generator, save_generator
from models.generators.two_tower import TwoTowerGenerator
from training.interactions import Protocol, split_per_user
from training.movielens_like import simulate_interactions
from training.ranking_metrics import topk_metrics

pytestmark = pytest.mark.unit

GOALS = ["strength", "endurance", "mobility", "weight_loss"]
LEVELS = ["beginner", "intermediate", "expert"]
MUSCLES = ["legs", "core", "back", "chest", "arms"]


@pytest.fixture(scope="module")
def movielens_like() -> tuple[pd.DataFrame, pd.DataFrame, TwoTowerGenerator]:
    interactions, items = simulate_interactions(n_users=300, n_items=1000, n_interactions=15_000, seed=3)
    train, test = split_per_user(interactions, Protocol.parse("random:0.75"), seed=1)
    return train, test, TwoTowerGenerator(epochs=10, seed=1).fit(train, items)


def fitness_world(*, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Users use mostly items of the category of their goal; 24 items nobody used and 40 cold users.

    (interactions, items with type-like attributes, training users, cold users), attributes with gaps.
    """
    rng = np.random.default_rng(seed)
    n_used, n_new, n_users, n_cold = 200, 24, 240, 40
    category = np.arange(n_used + n_new) % len(GOALS)
    items = pd.DataFrame(
        {
            "category": [GOALS[c] for c in category],
            "level": rng.choice(LEVELS, len(category)),
            "muscles": ["|".join(rng.choice(MUSCLES, 2, replace=False)) for _ in category],
            "duration": rng.integers(10, 60, len(category)).astype(float),
            "intensity": rng.random(len(category)),
        },
        index=pd.Index([f"i{i}" for i in range(len(category))], name="item_id"),
    )
    items.loc[items.index[::7], "duration"] = np.nan
    goal = rng.integers(0, len(GOALS), n_users + n_cold)
    users = pd.DataFrame(
        {
            "goal": [GOALS[g] for g in goal],
            "level": rng.choice(LEVELS, len(goal)),
            "resting_hr": rng.normal(62, 6, len(goal)),
        },
        index=pd.Index([f"u{u}" for u in range(len(goal))], name="user_id"),
    )
    users.loc[users.index[::5], "resting_hr"] = np.nan
    popularity = rng.normal(scale=0.7, size=n_used)
    rows = []
    for u in range(n_users):
        keys = popularity + np.where(category[:n_used] == goal[u], 2.0, 0.0) + rng.gumbel(size=n_used)
        rows += [(f"u{u}", f"i{i}") for i in np.argsort(-keys)[:20]]
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id"])
    return interactions, items, users.iloc[:n_users], users.iloc[n_users:]


@pytest.fixture(scope="module")
def fitness() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, TwoTowerGenerator]:
    interactions, items, train_users, cold_users = fitness_world()
    model = TwoTowerGenerator(epochs=10).fit(interactions, items, users_frame=train_users)
    return interactions, items, train_users, cold_users, model


def test_two_tower_recall_at_100_beats_popularity(movielens_like) -> None:  # type: ignore[no-untyped-def]
    train, test, model = movielens_like
    users = pd.unique(test["user_id"]).tolist()
    recs = model.recommend(users, 100)
    assert recs.merge(train, on=["user_id", "item_id"]).empty  # seen items removed
    assert recs.groupby("user_id").size().eq(100).all()
    two_tower = topk_metrics(recs, test, k=100)["recall@100"]
    popularity = topk_metrics(PopularityGenerator().fit(train).recommend(users, 100), test, k=100)["recall@100"]
    assert two_tower > popularity + 0.05, (two_tower, popularity)


def test_approximate_index_recall_against_exact_search(movielens_like) -> None:  # type: ignore[no-untyped-def]
    train, test, model = movielens_like
    users = pd.unique(train["user_id"]).tolist()
    exact = model.reindex(exact_max_items=10**9).recommend(users, 100)
    assert not model.ann.approximate
    approximate = model.reindex(exact_max_items=100).recommend(users, 100)
    assert model.ann.approximate
    assert approximate.merge(train, on=["user_id", "item_id"]).empty
    overlap = len(approximate.merge(exact, on=["user_id", "item_id"])) / len(exact)
    assert overlap >= 0.95, overlap
    model.reindex(exact_max_items=50_000)


def test_inner_product_index_keeps_every_copy_of_duplicate_vectors() -> None:
    # Items described by the same attributes only embed identically; HNSW alone would lose most copies.
    rng = np.random.default_rng(0)
    vectors = np.repeat(rng.normal(size=(50, 8)), 20, axis=0)
    index = InnerProductIndex(vectors, exact_max_items=10)
    queries = rng.normal(size=(5, 8))
    rows, scores = index.search(queries, 60)
    assert index.approximate
    assert (rows >= 0).all() and all(len(set(r)) == 60 for r in rows)
    exact = -np.sort(-(queries @ vectors.T), axis=1)[:, :60]
    np.testing.assert_allclose(scores, exact, rtol=1e-4)
    np.testing.assert_allclose(np.einsum("ij,ikj->ik", queries, vectors[rows]), scores, rtol=1e-4)


def test_cold_users_get_candidates_from_their_side_features(fitness) -> None:  # type: ignore[no-untyped-def]
    _, items, _, cold_users, model = fitness
    users = cold_users.index.tolist()
    recs = model.recommend(users, 10, users_frame=cold_users)
    assert recs.groupby("user_id").size().eq(10).all()
    matched = recs.join(items["category"], on="item_id").join(cold_users["goal"], on="user_id")
    assert (matched["category"] == matched["goal"]).mean() > 0.8  # base rate 0.25
    # Without a description a cold user still gets candidates (the "unknown user" vector), not tailored.
    anonymous = model.recommend(users, 10).join(items["category"], on="item_id").join(cold_users["goal"], on="user_id")
    assert len(anonymous) == 10 * len(users)
    assert (anonymous["category"] == anonymous["goal"]).mean() < 0.5


def test_never_used_items_are_reached_from_their_attributes(fitness) -> None:  # type: ignore[no-untyped-def]
    interactions, items, train_users, cold_users, model = fitness
    new_items = items.index.difference(pd.Index(interactions["item_id"].unique()))
    assert len(new_items) == 24
    users_frame = pd.concat([cold_users, train_users.iloc[:40]])
    ranked = model.recommend(users_frame.index.tolist(), len(items), users_frame=users_frame)
    ranked = ranked[ranked["item_id"].isin(new_items)]
    ranked = ranked.join(items["category"], on="item_id").join(users_frame["goal"], on="user_id")
    matching = ranked["category"] == ranked["goal"]
    assert ranked[matching]["rank"].mean() < 0.5 * ranked[~matching]["rank"].mean()
    # Most users find a never-used item of their goal among their first 20 candidates.
    reached = ranked[matching & (ranked["rank"] <= 20)]["user_id"].nunique()
    assert reached >= 0.8 * len(users_frame)


def test_save_and_load_give_the_same_candidates(fitness, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    interactions, _, train_users, cold_users, model = fitness
    users = train_users.index[:30].tolist() + cold_users.index[:10].tolist()
    model.reindex(exact_max_items=50)  # the HNSW graph is saved too
    try:
        before = model.recommend(users, 20, users_frame=cold_users)
        save_generator(model, tmp_path / "two_tower")
        loaded = load_generator(tmp_path / "two_tower")
        assert isinstance(loaded, TwoTowerGenerator) and loaded.ann.approximate
        after = loaded.recommend(users, 20, users_frame=cold_users)
        pd.testing.assert_frame_equal(before[["user_id", "item_id", "rank"]], after[["user_id", "item_id", "rank"]])
        np.testing.assert_allclose(before["score"], after["score"], rtol=1e-5)
        pairs = interactions.sample(50, random_state=0)
        np.testing.assert_allclose(
            model.score_pairs(pairs["user_id"], pairs["item_id"]),
            loaded.score_pairs(pairs["user_id"], pairs["item_id"]),
            rtol=1e-5,
        )
    finally:
        model.reindex(exact_max_items=50_000)
