"""The PyTorch ranker on a simulated ranking set with known ground truth: beats popularity ordering, copes
with missing features and cold users, both losses learn, early stopping, save/load."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.torch_ranker import TorchRanker
from training.evaluate import mean_ndcg

pytestmark = pytest.mark.unit

GOALS = ["strength", "endurance", "mobility", "weight_loss"]
FEATURES = ["user_goal", "item_category", "user_age", "fit", "item_popularity", "noise"]
CATEGORICAL = ["user_goal", "item_category"]


def ranking_set(n_groups: int, *, seed: int, slate: int = 10, cold_share: float = 0.25) -> pd.DataFrame:
    """Relevance = the item's category matches the user's goal (an interaction the network must learn from
    two categorical columns) + `fit`, + a little popularity; `noise` carries nothing. Cold users have no
    goal and no age (NaN); a few `fit` values are missing."""
    rng = np.random.default_rng(seed)
    n = n_groups * slate
    goal = np.repeat(rng.integers(0, len(GOALS), n_groups), slate)
    category = rng.integers(0, len(GOALS), n)
    popularity = rng.normal(size=n)
    fit = rng.random(n)
    utility = 1.2 * (goal == category) + 1.0 * fit + 0.25 * popularity + rng.normal(0, 0.2, n)
    frame = pd.DataFrame(
        {
            "request_id": np.repeat([f"s{seed}-r{i}" for i in range(n_groups)], slate),
            "user_goal": pd.Series([GOALS[g] for g in goal], dtype=object),
            "item_category": [GOALS[c] for c in category],
            "user_age": np.repeat(rng.normal(35, 8, n_groups), slate),
            "fit": fit,
            "item_popularity": popularity,
            "noise": rng.random(n),
            "label": np.digitize(utility, [1.2, 1.7, 2.2]),
        }
    )
    cold = np.repeat(rng.random(n_groups) < cold_share, slate)
    frame.loc[cold, ["user_goal", "user_age"]] = np.nan
    frame.loc[rng.random(n) < 0.05, "fit"] = np.nan
    frame["cold"] = cold
    return frame


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return ranking_set(400, seed=1), ranking_set(100, seed=2), ranking_set(200, seed=3)


@pytest.fixture(scope="module")
def listwise(data) -> TorchRanker:  # type: ignore[no-untyped-def]
    train, valid, _ = data
    return TorchRanker().fit(train, valid, features=FEATURES, categorical=CATEGORICAL, params={"epochs": 40})


def test_torch_ranker_beats_popularity_ordering(data, listwise) -> None:  # type: ignore[no-untyped-def]
    _, _, test = data
    model = mean_ndcg(test, listwise.score(test))
    popularity = mean_ndcg(test, test["item_popularity"].to_numpy())
    assert model > popularity + 0.15, (model, popularity)
    # Cold users (no goal, no age): the ranker falls back on what it still sees (fit, popularity), as well
    # as the ground truth's own ordering of those two allows, and still beats popularity.
    cold = test[test["cold"]]
    truth = (cold["fit"].fillna(0.5) + 0.25 * cold["item_popularity"]).to_numpy()
    cold_model = mean_ndcg(cold, listwise.score(cold))
    assert cold_model > mean_ndcg(cold, cold["item_popularity"].to_numpy()) + 0.03
    assert cold_model > mean_ndcg(cold, truth) - 0.02


def test_missing_values_and_unknown_levels_score_finite(listwise, data) -> None:  # type: ignore[no-untyped-def]
    _, _, test = data
    odd = test.head(20).copy()
    odd["item_category"] = "a level never seen"
    odd.loc[odd.index[:10], ["fit", "item_popularity", "user_age"]] = np.nan
    assert np.isfinite(listwise.score(odd)).all()
    assert listwise.score(test.head(0)).shape == (0,)
    with pytest.raises(KeyError, match="noise"):
        listwise.score(test.drop(columns=["noise"]))


def test_early_stopping_keeps_the_best_validation_epoch(listwise, data) -> None:  # type: ignore[no-untyped-def]
    _, valid, _ = data
    scores = [h["valid_ndcg@10"] for h in listwise.history]
    assert listwise.valid_ndcg == max(scores)
    assert listwise.history[listwise.best_epoch - 1]["valid_ndcg@10"] == listwise.valid_ndcg
    # The weights kept are the best epoch's (the ranker's own NDCG agrees with training.evaluate's).
    assert mean_ndcg(valid, listwise.score(valid)) == pytest.approx(listwise.valid_ndcg, abs=1e-6)


def test_pairwise_loss_learns_too(data) -> None:  # type: ignore[no-untyped-def]
    train, valid, test = data
    ranker = TorchRanker().fit(
        train, valid, features=FEATURES, categorical=CATEGORICAL, params={"loss": "pairwise", "epochs": 25}
    )
    assert mean_ndcg(test, ranker.score(test)) > mean_ndcg(test, test["item_popularity"].to_numpy()) + 0.1


def test_save_and_load_give_the_same_scores(listwise, data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, _, test = data
    listwise.save(tmp_path / "ranker")
    assert sorted(p.name for p in (tmp_path / "ranker").iterdir()) == ["torch_ranker.json", "torch_ranker_state.pt"]
    loaded = TorchRanker.load(tmp_path / "ranker")
    np.testing.assert_array_equal(loaded.score(test), listwise.score(test))
    assert loaded.feature_names == tuple(FEATURES)
