"""LambdaRank training on a synthetic ranking problem with a numeric and a categorical signal."""

import numpy as np
import pandas as pd
import pytest
from support import synthetic_ranking_set as synthetic

from training.evaluate import mean_ndcg
from training.ranker import group_sizes, train_ranker, with_positive_groups


def test_group_sizes_follow_contiguous_runs_and_refuse_split_groups() -> None:
    frame = pd.DataFrame({"request_id": ["a", "a", "b", "c", "c", "c"]})
    assert list(group_sizes(frame)) == [2, 1, 3]
    with pytest.raises(ValueError, match="not contiguous"):
        group_sizes(pd.DataFrame({"request_id": ["a", "b", "a"]}))


def test_groups_without_positive_are_dropped_for_training() -> None:
    frame = pd.DataFrame({"request_id": ["a", "a", "b", "b"], "label": [0, 0, 0, 2]})
    assert list(with_positive_groups(frame).request_id) == ["b", "b"]


def test_the_ranker_learns_numeric_and_categorical_signal() -> None:
    train, valid, test = (
        synthetic(300, seed=1),
        synthetic(80, seed=2),
        synthetic(150, seed=3),
    )
    trained = train_ranker(
        train, valid, features=["fit", "category", "noise"], categorical=["category"], num_boost_round=150
    )

    assert trained.spec.categorical == {"category": ("a", "b", "c")}
    assert trained.booster.params["objective"] == "lambdarank"
    # Early stopping only picks among iterations after the warm-up (min_rounds=100 by default).
    assert 100 <= trained.best_iteration <= 150
    assert trained.valid_ndcg == max(trained.history["valid_ndcg_at_10"][99:])
    assert trained.train_groups == train[train.groupby("request_id").label.transform("max") > 0].request_id.nunique()
    model = mean_ndcg(test, trained.ranker().score(test))
    random = mean_ndcg(test, np.random.default_rng(0).random(len(test)))
    assert model > 0.85
    assert model > random + 0.2
    importance = dict(zip(trained.booster.feature_name(), trained.booster.feature_importance("gain"), strict=True))
    assert importance["fit"] > importance["noise"] and importance["category"] > importance["noise"]


def test_position_debiasing_trains_too() -> None:
    trained = train_ranker(
        synthetic(100, seed=4),
        synthetic(40, seed=5),
        features=["fit", "category"],
        categorical=["category"],
        num_boost_round=30,
        debias_position=True,
    )
    assert trained.valid_ndcg > 0.7
