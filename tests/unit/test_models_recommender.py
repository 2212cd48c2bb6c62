"""The packaged recommender in memory: encoding, scoring, explanations, what gets pickled."""

import pickle

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from models.recommender import FeatureSpec, Recommender


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
def recommender() -> Recommender:
    data = frame(600, seed=1)
    target = data["fit"] * 2 + (data["level"] == "expert") * 1.0
    spec = FeatureSpec.fit(data, names=["fit", "level", "premium", "noise"], categorical=["level"])
    booster = lgb.train(
        {"objective": "regression", "num_threads": 1, "verbose": -1, "min_data_in_leaf": 5},
        lgb.Dataset(spec.encode(data), target, feature_name=list(spec.names), categorical_feature=["level"]),
        num_boost_round=30,
    )
    return Recommender(booster, spec)


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


def test_score_follows_the_signal_and_ignores_column_order(recommender: Recommender) -> None:
    data = frame(50, seed=2)
    scores = recommender.score(data)
    assert scores.shape == (50,)
    np.testing.assert_allclose(recommender.score(data[list(reversed(data.columns))]), scores)
    np.testing.assert_allclose(recommender.predict(None, data), scores)
    low = pd.DataFrame({"fit": [0.05], "level": ["beginner"], "premium": [False], "noise": [0.5]})
    high = low.assign(fit=0.95, level="expert")
    assert recommender.score(high)[0] > recommender.score(low)[0] + 1.0
    assert recommender.score(data.iloc[:0]).shape == (0,)


def test_explain_names_the_feature_that_raised_the_score_most(recommender: Recommender) -> None:
    rows = pd.DataFrame(
        {
            "fit": [0.99, 0.02, 0.02],
            "level": ["beginner", "expert", "beginner"],
            "premium": [True] * 3,
            "noise": [0.5] * 3,
        }
    )
    reasons = recommender.explain(rows)
    assert reasons[0] == "fit"
    assert reasons[1] == "level"
    assert reasons[2] == ""  # nothing pushes a low-fit beginner row above the average
    assert recommender.explain(rows.iloc[:0]) == []


def test_relative_explanations_ignore_what_lifts_every_row(recommender: Recommender) -> None:
    rows = pd.DataFrame(
        {"fit": [0.99, 0.99], "level": ["beginner", "expert"], "premium": [True] * 2, "noise": [0.5] * 2}
    )
    assert recommender.explain(rows) == ["fit", "fit"]
    assert recommender.explain(rows, relative=True)[1] == "level"


def test_the_booster_is_never_pickled(recommender: Recommender) -> None:
    restored = pickle.loads(pickle.dumps(recommender))
    with pytest.raises(RuntimeError, match="no booster"):
        restored.score(frame(3, seed=3))


def test_encode_is_the_same_for_a_float_block_and_mixed_columns() -> None:
    from models.recommender import FeatureSpec

    floats = pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": [0.5, 0.25, 0.0], "level": ["x", "y", None]})
    mixed = floats.assign(a=pd.Series(["1", None, "3"], dtype=object))  # text numbers: the per-column path
    spec = FeatureSpec.fit(floats, names=["a", "b", "level"], categorical=["level"])
    fast, slow = spec.encode(floats), spec.encode(mixed)
    np.testing.assert_array_equal(fast, slow)
    np.testing.assert_array_equal(fast[:, 2], [0, 1, np.nan])
