"""Generators saved and loaded without pickle give the same recommendations; cold users through the users frame."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.generators import (
    ALSGenerator,
    BlendGenerator,
    ContentGenerator,
    EASEGenerator,
    PopularityGenerator,
    RP3betaGenerator,
    ScoringGenerator,
    SpectralGenerator,
    load_generator,
    save_generator,
)
from models.generators.persist import REGISTRY, generator_class
from training.movielens_like import simulate_interactions

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    interactions, items = simulate_interactions(n_users=150, n_items=120, n_interactions=4_000, seed=7)
    rng = np.random.default_rng(0)
    users = pd.DataFrame(
        {"goal": rng.choice(["strength", "cardio"], 150), "level": rng.choice(["beginner", "expert"], 150)},
        index=pd.Index((np.arange(150) + 1).astype(str), name="user_id"),
    )
    return interactions, items, users


@pytest.mark.parametrize(
    "make",
    [
        lambda: PopularityGenerator(half_life_days=30.0, segment_columns=["goal", "level"]),
        lambda: EASEGenerator(l2=50.0, mode="dense"),
        lambda: EASEGenerator(l2=50.0, mode="sparse", neighbours=30),
        lambda: RP3betaGenerator(alpha=0.9, beta=0.4, neighbours=50),
        lambda: ALSGenerator(factors=8, iterations=3),
        lambda: ContentGenerator(columns=["genre"], user_columns={"favourite": "genre"}),
        lambda: EASEGenerator(l2=20.0, window=4.0),
        lambda: SpectralGenerator(factors=6, normalisation=0.75, window=10.0),
        lambda: BlendGenerator(
            [EASEGenerator(l2=50.0), ContentGenerator(columns=["genre"], user_columns={"favourite": "genre"})],
            [1.0, 0.3],
        ),
    ],
    ids=["popularity", "ease-dense", "ease-sparse", "rp3beta", "als", "content", "ease-window", "spectral", "blend"],
)
def test_a_loaded_generator_recommends_what_the_saved_one_did(data, make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    interactions, items, users = data
    generator: ScoringGenerator = make().fit(interactions, items, users_frame=users)
    save_generator(generator, tmp_path / "g")
    assert not list((tmp_path / "g").glob("*.pkl"))
    loaded = load_generator(tmp_path / "g")
    assert type(loaded) is type(generator) and loaded.name == generator.name
    asked = ["1", "2", "77", "cold-1", "cold-2"]
    cold = pd.DataFrame(
        {"goal": ["cardio", "strength"], "level": ["expert", "beginner"], "favourite": ["g1", "g3"]},
        index=["cold-1", "cold-2"],
    )
    before = generator.recommend(asked, 10, users_frame=cold)
    after = loaded.recommend(asked, 10, users_frame=cold)
    pd.testing.assert_frame_equal(before, after)
    assert set(before["user_id"]) >= {"1", "2", "77"}


def test_integer_ids_come_back_as_integers(tmp_path: Path) -> None:
    interactions = pd.DataFrame({"user_id": [1, 1, 2, 3], "item_id": [10, 11, 10, 12]})
    generator = EASEGenerator(l2=1.0).fit(interactions)
    generator.save(tmp_path)
    loaded = EASEGenerator.load(tmp_path)
    pd.testing.assert_frame_equal(generator.recommend([2, 3], 2), loaded.recommend([2, 3], 2))
    with pytest.raises(ValueError, match="not a"):
        RP3betaGenerator.load(tmp_path)


def test_the_registry_knows_every_class_and_refuses_unknown_ones(tmp_path: Path) -> None:
    for name, module in REGISTRY.items():
        if name != "TwoTowerGenerator":  # the torch helper's module, imported lazily
            assert generator_class(name).__module__ == module
    assert REGISTRY["TwoTowerGenerator"] == "models.generators.two_tower"
    (tmp_path / "generator.json").write_text('{"class": "os.system", "format": 1}')
    with pytest.raises(ValueError, match="unknown generator class"):
        load_generator(tmp_path)


def test_a_cold_user_reaches_a_never_seen_item_matching_their_attributes() -> None:
    interactions = pd.DataFrame(
        {"user_id": ["yogi"] * 2 + ["lifter"] * 2, "item_id": ["y1", "y2", "l1", "l2"], "timestamp": 0}
    )
    items = pd.DataFrame(
        {
            "category": ["yoga", "yoga", "strength", "strength", "yoga", "strength", "strength"],
            "level": ["beginner", "beginner", "expert", "expert", "expert", "beginner", "expert"],
            "equipment": ["mat", "mat", "barbell", "barbell", "mat", "dumbbell", "barbell"],
        },
        index=["y1", "y2", "l1", "l2", "y-new", "s-new-easy", "s-new-hard"],
    )
    content = ContentGenerator().fit(interactions, items)
    asked = pd.DataFrame({"level": ["beginner"], "equipment": ["dumbbell"]}, index=["newcomer"])
    recs = content.recommend(["newcomer"], 1, users_frame=asked)
    assert recs["item_id"].tolist() == ["s-new-easy"]  # nobody used it; level and equipment match
    # Without attributes a cold user gets nothing from this source.
    assert content.recommend(["newcomer"], 5).empty
    assert content.recommend(["newcomer"], 5, users_frame=asked.iloc[:0].reindex(["newcomer"])).empty


def test_a_cold_users_goal_stands_for_what_training_users_with_that_goal_use() -> None:
    # goal and category share no values: the link is learned from the training users.
    rng = np.random.default_rng(1)
    names = [f"i{i}" for i in range(40)]
    items = pd.DataFrame({"category": ["yoga" if i % 2 else "strength" for i in range(40)]}, index=names)
    rows, goals = [], {}
    for user in range(60):
        goal = "flexibility" if user % 2 else "muscle"
        goals[f"u{user}"] = goal
        pool = [n for i, n in enumerate(names) if (i % 2 == 1) == (goal == "flexibility")]
        rows += [{"user_id": f"u{user}", "item_id": item} for item in rng.choice(pool, 6, replace=False)]
    users = pd.DataFrame({"goal": pd.Series(goals)})
    content = ContentGenerator().fit(pd.DataFrame(rows), items, users_frame=users)
    asked = pd.DataFrame({"goal": ["flexibility", "muscle"]}, index=["new-f", "new-m"])
    recs = content.recommend(["new-f", "new-m"], 10, users_frame=asked)
    category = recs["item_id"].map(items["category"])
    assert (category[recs["user_id"] == "new-f"] == "yoga").all()
    assert (category[recs["user_id"] == "new-m"] == "strength").all()
