"""Ray Tune (ASHA) over LightGBM ranker parameters and a Ray Train fit of the PyTorch models, on one local Ray."""

import numpy as np
import pandas as pd
import pytest
from support import synthetic_ranking_set as ranking_set

from models.generators import PopularityGenerator
from models.generators.two_tower import TwoTowerGenerator
from models.torch_ranker import TorchRanker
from training.evaluate import mean_ndcg
from training.interactions import Protocol, split_per_user
from training.movielens_like import simulate_interactions
from training.ranker import train_ranker
from training.ranking_metrics import topk_metrics
from training.ray_runtime import RaySettings
from training.torch_train import fit_torch_ranker_on_ray, fit_two_tower_on_ray
from training.tune import tune_lightgbm

pytestmark = pytest.mark.integration


def test_tune_finds_a_lightgbm_configuration_at_least_as_good_as_the_default(ray_session) -> None:  # type: ignore[no-untyped-def]
    train, valid, test = (
        ranking_set(100, seed=1),
        ranking_set(60, seed=2),
        ranking_set(150, seed=3),
    )
    features, categorical = ["fit", "category", "noise"], ["category"]
    # A short boosting budget: the default's slow learning rate is not the best use of 30 rounds.
    outcome = tune_lightgbm(
        train, valid, features=features, categorical=categorical, num_samples=4, num_boost_round=30, min_rounds=10
    )

    assert outcome.trials == 4
    assert outcome.results[0]["config"] == outcome.default_config  # the default is always tried
    assert outcome.stopped_early >= 1  # ASHA cut some trials at its first rung
    assert {r["rounds"] for r in outcome.results} <= {10, 15, 20, 25, 30}
    # Tune's own winner, refitted with train_ranker, is at least as good as the default on validation.
    assert outcome.tune_best_score >= outcome.default_score
    assert outcome.best_score >= outcome.default_score
    refit = train_ranker(
        train,
        valid,
        features=features,
        categorical=categorical,
        params=outcome.best_config,
        num_boost_round=30,
        min_rounds=10,
    )
    assert refit.valid_ndcg == pytest.approx(outcome.best_score)
    assert mean_ndcg(test, np.asarray(refit.booster.predict(refit.spec.encode(test)))) > 0.85


def test_two_tower_trains_through_ray_train_and_comes_back_usable(ray_session) -> None:  # type: ignore[no-untyped-def]
    interactions, items = simulate_interactions(n_users=200, n_items=400, n_interactions=8_000, seed=5)
    train, test = split_per_user(interactions, Protocol.parse("random:0.75"), seed=1)

    # One real Ray Train worker (an actor process): the model travels back as a Ray Train checkpoint.
    model = fit_two_tower_on_ray(train, items, params={"epochs": 8, "seed": 1}, settings=RaySettings(address=None))

    assert isinstance(model, TwoTowerGenerator)
    assert model.train_metrics["fit_seconds"] > 0 and len(model.history) == 8
    users = pd.unique(test["user_id"]).tolist()
    recs = model.recommend(users, 50)
    assert recs.groupby("user_id").size().eq(50).all()
    assert recs.merge(train, on=["user_id", "item_id"]).empty
    popularity = PopularityGenerator().fit(train).recommend(users, 50)
    assert topk_metrics(recs, test, k=50)["recall@50"] > topk_metrics(popularity, test, k=50)["recall@50"]


def test_torch_ranker_trains_through_ray_train_local_mode(ray_session) -> None:  # type: ignore[no-untyped-def]
    # Ray Train's local mode (0 workers) runs the same training loop, report and checkpoint in this process;
    # the worker path is the one the two-tower test takes (starting a worker costs 10-20 s on 2 cores).
    train, valid, test = (
        ranking_set(150, seed=4),
        ranking_set(50, seed=5),
        ranking_set(100, seed=6),
    )

    ranker = fit_torch_ranker_on_ray(
        train,
        valid,
        features=["fit", "category", "noise"],
        categorical=["category"],
        params={"epochs": 15},
        settings=RaySettings(address=None, train_workers=0),
    )

    assert isinstance(ranker, TorchRanker)
    assert ranker.train_metrics["valid_ndcg@10"] == pytest.approx(ranker.valid_ndcg)
    assert mean_ndcg(test, ranker.score(test)) > mean_ndcg(test, np.random.default_rng(0).random(len(test))) + 0.2
