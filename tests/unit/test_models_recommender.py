"""The packaged recommender in memory: ranker encoding and explanations, candidates and their source
features, cold users, the slate policy, saving without pickle."""

import pickle
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from models.generators import ContentGenerator, EASEGenerator, PopularityGenerator
from models.recommender import (
    N_SOURCES,
    BlendRanker,
    FeatureSpec,
    LightGBMRanker,
    PackagedRecommender,
    RecommenderConfig,
    SlatePolicy,
    load_ranker,
    save_ranker,
    users_frame,
)


def frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "fit": rng.random(n),
            "level": rng.choice(["beginner", "expert"], n),
            "premium": rng.random(n) < 0.5,
            "noise": rng.random(n),
        }
    )


@pytest.fixture(scope="module")
def ranker() -> LightGBMRanker:
    data = frame(600, seed=1)
    target = data["fit"] * 2 + (data["level"] == "expert") * 1.0
    spec = FeatureSpec.fit(data, names=["fit", "level", "premium", "noise"], categorical=["level"])
    booster = lgb.train(
        {"objective": "regression", "num_threads": 1, "verbose": -1, "min_data_in_leaf": 5},
        lgb.Dataset(spec.encode(data), target, feature_name=list(spec.names), categorical_feature=["level"]),
        num_boost_round=30,
    )
    return LightGBMRanker(booster, spec)


def test_encoding_uses_frozen_levels_and_marks_unknown_or_missing_as_nan() -> None:
    spec = FeatureSpec(names=("x", "level"), categorical={"level": ("beginner", "expert")})
    got = spec.encode(pd.DataFrame({"level": ["expert", "novice", None], "x": [1, None, 3], "extra": [0, 0, 0]}))
    np.testing.assert_array_equal(got[:, 0], [1.0, np.nan, 3.0])
    np.testing.assert_array_equal(got[:, 1], [1.0, np.nan, np.nan])
    with pytest.raises(KeyError, match="level"):
        spec.encode(pd.DataFrame({"x": [1]}))
    with pytest.raises(ValueError, match="not among the features"):
        FeatureSpec.fit(pd.DataFrame({"x": [1]}), names=["x"], categorical=["y"])
    assert FeatureSpec.from_json(spec.to_json()) == spec
    floats = pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": [0.5, 0.25, 0.0], "level": ["x", "y", None]})
    mixed = floats.assign(a=pd.Series(["1", None, "3"], dtype=object))  # text numbers: the per-column path
    spec = FeatureSpec.fit(floats, names=["a", "b", "level"], categorical=["level"])
    np.testing.assert_array_equal(spec.encode(floats), spec.encode(mixed))


def test_ranker_scores_explains_and_round_trips(ranker: LightGBMRanker, tmp_path: Path) -> None:
    data = frame(50, seed=2)
    scores = ranker.score(data)
    np.testing.assert_allclose(ranker.score(data[list(reversed(data.columns))]), scores)
    low = pd.DataFrame({"fit": [0.05], "level": ["beginner"], "premium": [False], "noise": [0.5]})
    assert ranker.score(low.assign(fit=0.95, level="expert"))[0] > ranker.score(low)[0] + 1.0
    rows = pd.DataFrame(
        {"fit": [0.99, 0.02, 0.02], "level": ["beginner", "expert", "beginner"], "premium": [True] * 3, "noise": 0.5}
    )
    assert ranker.explain(rows) == ["fit", "level", ""]  # nothing lifts a low-fit beginner above the average
    same_fit = rows.iloc[[0]].assign(level="expert")
    both = pd.concat([rows.iloc[[0]], same_fit])
    assert ranker.explain(both) == ["fit", "fit"] and ranker.explain(both, relative=True)[1] == "level"
    save_ranker(ranker, tmp_path / "lgb")
    np.testing.assert_allclose(load_ranker(tmp_path / "lgb").score(data), scores)
    blend = BlendRanker({"a": ranker, "b": ranker}, weights={"a": 0.25, "b": 0.75}, scales={"a": 2.0, "b": 2.0})
    save_ranker(blend, tmp_path / "blend")
    np.testing.assert_allclose(load_ranker(tmp_path / "blend").score(data), scores / 2.0)
    assert blend.explain(rows) == ranker.explain(rows)


def test_slate_policy_caps_categories_without_shortening() -> None:
    policy = SlatePolicy(k=4, max_per_category=2)
    categories = ["a", "a", "a", "b", "a", "c"]
    scores = np.array([9.0, 8.0, 7.0, 6.0, 5.0, -np.inf])
    assert policy.select(categories, scores).tolist() == [0, 1, 3, 2]  # the third "a" fills the slate
    assert SlatePolicy(k=3).select(categories, scores).tolist() == [0, 1, 2]
    assert policy.select(categories, scores, k=10).tolist() == [0, 1, 3, 2, 4]  # -inf never chosen


ATTRIBUTES = {"goal": "user_profile:goal", "level": "user_profile:fitness_level", "equipment": "user_profile:equipment"}


def _world(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    items = pd.DataFrame(
        {
            "category": rng.choice(["cardio", "strength", "stretching"], 60),
            "level": rng.choice(["beginner", "expert"], 60),
            "equipment": [["body only"] if i % 2 else ["dumbbell"] for i in range(60)],
        },
        index=[f"it-{i}" for i in range(60)],
    )
    users = [f"u-{i}" for i in range(40)]
    interactions = pd.DataFrame(
        {
            "user_id": rng.choice(users[:30], 500),  # u-30 .. u-39 never interacted: cold
            "item_id": rng.choice(items.index[:50], 500),  # it-50 .. it-59 never used: new
            "weight": 1.0,
            "timestamp": rng.random(500) * 1e6,
        }
    )
    stored = pd.DataFrame(
        {
            "goal": rng.choice(["endurance", "build_muscle"], 40),
            "fitness_level": rng.choice(["beginner", "expert"], 40),
            "equipment": "body only,dumbbell",
        },
        index=pd.Index(users, name="user_id"),
    )
    return items, interactions, stored


@pytest.fixture(scope="module")
def package() -> PackagedRecommender:
    items, interactions, stored = _world()
    described = users_frame(stored, ATTRIBUTES, {"equipment": ","})
    generators = {
        "popularity": PopularityGenerator(segment_columns=["goal", "level"], name="popularity"),
        "ease": EASEGenerator(l2=10.0, name="ease"),
        "content": ContentGenerator(
            columns=["category", "level", "equipment"], user_columns={"level": "level"}, name="content"
        ),
    }
    for generator in generators.values():
        generator.fit(interactions, items, users_frame=described)
    config = RecommenderConfig(
        feature_service="ranking_v1",
        online_features=("fit",),
        sources=tuple(generators),
        per_source={"popularity": 5, "ease": 5, "content": 5},
        slate=SlatePolicy(k=5, max_per_category=2),
        user_attributes=ATTRIBUTES,
        multi_valued={"equipment": ","},
    )
    unranked = PackagedRecommender(generators=generators, config=config, items=items["category"])
    rows = unranked.candidates([f"u-{i}" for i in range(40)], described)
    rows["fit"] = np.random.default_rng(1).random(len(rows))
    spec = FeatureSpec.fit(rows, names=config.features, categorical=[])
    target = rows["fit"] - rows["ease_rank"].fillna(60) / 60
    booster = lgb.train(
        {"objective": "regression", "verbose": -1, "min_data_in_leaf": 5, "num_threads": 1},
        lgb.Dataset(spec.encode(rows), target),
        num_boost_round=20,
    )
    return PackagedRecommender(
        generators=generators, ranker=LightGBMRanker(booster, spec), config=config, items=items["category"]
    )


def test_users_frame_renames_splits_and_blanks() -> None:
    stored = pd.DataFrame(
        {"goal": ["endurance", ""], "fitness_level": ["expert", None], "equipment": ["none,body only", ""]},
        index=["u-1", "u-2"],
    )
    got = users_frame(stored, ATTRIBUTES, {"equipment": ","})
    assert list(got.columns) == ["goal", "level", "equipment"]
    assert got.loc["u-1"].tolist() == ["endurance", "expert", ["body only", "none"]]
    assert got.loc["u-2"].isna().all()


def test_candidates_carry_every_source_and_match_their_source_features(package: PackagedRecommender) -> None:
    items, _, stored = _world()
    described = package.users_frame(stored)
    found = package.candidates(["u-1", "u-35"], described)
    assert set(found["user_id"]) == {"u-1", "u-35"} and not found.duplicated(["user_id", "item_id"]).any()
    u1 = found[found["user_id"] == "u-1"]
    # Each source's top 5 is in, ranks from 1, and at least one source retrieved every row.
    for source in ("popularity", "ease", "content"):
        assert set(range(1, 6)) <= set(u1[f"{source}_rank"].dropna().astype(int))
        best = u1.loc[u1[f"{source}_rank"] == 1, f"{source}_relative"]
        assert best.tolist() == [1.0]
    assert (u1[N_SOURCES] >= 1).all() and u1[N_SOURCES].max() <= 3
    # The same columns for the same pairs, however they are asked for.
    again = package.source_features(found[["user_id", "item_id"]], described)
    pd.testing.assert_frame_equal(again.reset_index(drop=True), found[again.columns].reset_index(drop=True))
    # A cold user gets candidates from what describes them; their history is empty.
    cold = found[found["user_id"] == "u-35"]
    assert len(cold) >= 5 and (cold["user_item_history"] == 0).all() and cold["ease_rank"].isna().all()
    assert not package.knows_user("u-35") and package.knows_user("u-1")
    assert package.candidates(["u-35"], None)["content_rank"].isna().all()  # undescribed: no content candidates
    unknown_item = package.source_features(pd.DataFrame({"user_id": ["u-1"], "item_id": ["nope"]}), described)
    assert unknown_item["ease_rank"].isna().all() and unknown_item[N_SOURCES].tolist() == [0.0]


def test_saved_package_gives_the_same_candidates_scores_and_slates(
    package: PackagedRecommender, tmp_path: Path
) -> None:
    _, _, stored = _world()
    described = package.users_frame(stored)
    users = ["u-2", "u-7", "u-33"]
    found = package.candidates(users, described).assign(fit=0.5)
    loaded = PackagedRecommender.load(package.save(tmp_path / "package"))
    pd.testing.assert_frame_equal(loaded.candidates(users, described).assign(fit=0.5), found)
    np.testing.assert_allclose(loaded.score(found), package.score(found))
    for user in users:
        rows = found[found["user_id"] == user]
        scores = package.score(rows)
        slate = package.slate(rows["item_id"].tolist(), scores)
        assert slate.tolist() == loaded.slate(rows["item_id"].tolist(), loaded.score(rows)).tolist()
        categories = pd.Series([package.category_of(i) for i in rows["item_id"].to_numpy()[slate]])
        assert len(slate) == 5 and categories.value_counts().max() <= 2
    # pyfunc's predict computes the source columns itself when the frame lacks them.
    bare = found[["user_id", "item_id", "fit"]]
    np.testing.assert_allclose(loaded.predict(None, bare), package.score(found))
    assert loaded.explain(found.head(3)) == package.explain(found.head(3))
    assert {p.suffix for p in (tmp_path / "package").rglob("*") if p.is_file()} <= {".json", ".npz", ".txt"}


def test_nothing_fitted_is_pickled(package: PackagedRecommender) -> None:
    restored = pickle.loads(pickle.dumps(package))
    with pytest.raises(RuntimeError, match="empty"):
        restored.candidates(["u-1"])
