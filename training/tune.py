"""Ray Tune searches of the rankers' hyperparameters with an ASHA early-stopping scheduler.

- `tune_lightgbm`: LambdaRank parameters; every trial boosts on the training groups and reports the
  validation NDCG@10 (the best so far, as `train_ranker`'s early stopping keeps it) every `report_every`
  boosting rounds from `min_rounds` on, so ASHA stops the poor trials at its rungs ("round", the number of
  boosting rounds, is ASHA's time attribute; its first rung is `min_rounds`).
- `tune_torch_ranker`: `TorchRanker` parameters; every epoch reports validation NDCG@10.
- `tune_rankers`: both.

The default configuration is always one of the trials (Tune's `points_to_evaluate`). Tune ranks trials by
the metric they reported; the winner and the default are then refitted with the canonical trainers
(`training.ranker.train_ranker`, `TorchRanker.fit`), so `best_score` and `default_score` are measured the
same way on the validation groups. When the winner does not beat the default there, the default is kept
(`best_config` is then the default's, `improved` False): a search never hands back a configuration worse
than the default on validation. Only validation data is ever used: test data stays out of tuning.

Trials start in fresh Ray worker processes: this module imports only numpy and pandas at the top, the
driver encodes the LightGBM inputs once (the trials get arrays and import lightgbm alone), and torch is
imported by the torch search only.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from training.ray_runtime import RaySettings, ensure_ray, storage

METRIC = "valid_ndcg@10"
logger = logging.getLogger(__name__)


def lightgbm_space() -> dict[str, Any]:
    from ray import tune

    return {
        "learning_rate": tune.loguniform(0.02, 0.2),
        "num_leaves": tune.choice([4, 8, 16, 31]),
        "max_depth": tune.choice([3, 4, 6, -1]),
        "min_data_in_leaf": tune.choice([5, 10, 20, 50, 100]),
        "lambda_l2": tune.loguniform(0.1, 30.0),
        "feature_fraction": tune.uniform(0.6, 1.0),
    }


def torch_space() -> dict[str, Any]:
    from ray import tune

    return {
        "lr": tune.loguniform(1e-3, 1e-2),
        # Layer widths as text ("64,32"): Tune reads a list in a configuration as a nested search space.
        "hidden": tune.choice(["32", "64,32", "128,64"]),
        "dropout": tune.uniform(0.0, 0.3),
        "weight_decay": tune.loguniform(1e-6, 1e-3),
        "loss": tune.choice(["listwise", "pairwise"]),
    }


@dataclass(frozen=True)
class TuneOutcome:
    """What a search found, both configurations scored by the canonical trainer on validation."""

    model: str  # "lightgbm" or "torch_ranker"
    best_config: dict[str, Any]  # the parameters to train with (the searched keys only)
    best_score: float  # validation NDCG@10 of best_config
    default_config: dict[str, Any]
    default_score: float
    improved: bool  # Tune's winner beat the default when refitted
    tune_best_config: dict[str, Any]  # Tune's winner, whether kept or not
    tune_best_score: float  # its refitted validation NDCG@10
    trials: int
    stopped_early: int  # trials ASHA stopped before the end
    seconds: float
    results: list[dict[str, Any]] = field(default_factory=list)  # per trial: config, metric, iterations


def _json_config(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (float(v) if isinstance(v, float) else v) for k, v in config.items()}


def torch_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """A searched configuration as `TorchRanker` parameters (layer widths "64,32" -> [64, 32])."""
    params = dict(config)
    if isinstance(params.get("hidden"), str):
        params["hidden"] = [int(width) for width in params["hidden"].split(",") if width.strip()]
    return params


@dataclass(frozen=True)
class _LightGBMInputs:
    """The encoded training and validation groups (positive groups only), built once on the driver."""

    train_x: np.ndarray
    train_y: np.ndarray
    train_groups: np.ndarray
    valid_x: np.ndarray
    valid_y: np.ndarray
    valid_groups: np.ndarray
    feature_names: list[str]
    categorical: list[str]
    base_params: dict[str, Any]


def _lightgbm_inputs(
    train: pd.DataFrame, valid: pd.DataFrame, *, features: list[str], categorical: list[str]
) -> _LightGBMInputs:
    from models.recommender import FeatureSpec
    from training.ranker import DEFAULT_PARAMS, group_sizes, with_positive_groups

    train_pos, valid_pos = with_positive_groups(train), with_positive_groups(valid)
    if train_pos.empty or valid_pos.empty:
        raise ValueError("no request group with a positive label to train or validate on")
    spec = FeatureSpec.fit(train_pos, names=features, categorical=categorical)
    return _LightGBMInputs(
        train_x=spec.encode(train_pos),
        train_y=train_pos["label"].to_numpy(),
        train_groups=group_sizes(train_pos),
        valid_x=spec.encode(valid_pos),
        valid_y=valid_pos["label"].to_numpy(),
        valid_groups=group_sizes(valid_pos),
        feature_names=list(spec.names),
        categorical=[n for n in spec.names if n in spec.categorical],
        base_params=dict(DEFAULT_PARAMS),
    )


def _lightgbm_trial(
    config: dict[str, Any],
    *,
    inputs: _LightGBMInputs,
    num_boost_round: int,
    min_rounds: int,
    report_every: int,
) -> None:
    """One LambdaRank fit reporting the best validation NDCG@10 so far every `report_every` rounds from
    `min_rounds` on (ASHA's first rung is at `min_rounds`: earlier trees are not a fair comparison)."""
    import lightgbm as lgb
    from ray import tune

    params = {**inputs.base_params, **config, "num_threads": 1}
    train_set = lgb.Dataset(
        inputs.train_x,
        label=inputs.train_y,
        group=inputs.train_groups,
        feature_name=inputs.feature_names,
        categorical_feature=inputs.categorical,
        params={"verbose": -1},
    )
    valid_set = lgb.Dataset(
        inputs.valid_x,
        label=inputs.valid_y,
        group=inputs.valid_groups,
        feature_name=inputs.feature_names,
        categorical_feature=inputs.categorical,
        reference=train_set,
    )
    best = -math.inf

    def report(env: Any) -> None:
        # The best NDCG so far among rounds >= min_rounds, as `train_ranker`'s early stopping picks it.
        nonlocal best
        rounds = env.iteration + 1
        if rounds < min_rounds:
            return
        best = max(best, float(env.evaluation_result_list[0][2]))
        if (rounds - min_rounds) % report_every == 0 or rounds == num_boost_round:
            tune.report({METRIC: best, "round": rounds})

    lgb.train(params, train_set, num_boost_round=num_boost_round, valid_sets=[valid_set], callbacks=[report])


def _torch_trial(
    config: dict[str, Any],
    *,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    features: list[str],
    categorical: list[str],
    max_epochs: int,
) -> None:
    from ray import tune

    from models.torch_hooks import TrainHooks
    from models.torch_ranker import TorchRanker

    best = -math.inf

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        nonlocal best
        best = max(best, metrics["valid_ndcg@10"])
        tune.report({METRIC: best, "round": epoch + 1})

    params = {**torch_params(config), "epochs": max_epochs, "threads": 1}
    TorchRanker().fit(
        train, valid, features=features, categorical=categorical, params=params, hooks=TrainHooks(on_epoch=on_epoch)
    )


def _search(
    trainable: Callable[..., None],
    data: dict[str, Any],
    *,
    space: Mapping[str, Any],
    default: dict[str, Any],
    name: str,
    num_samples: int,
    max_t: int,
    grace_period: int,
    max_concurrent: int,
    seed: int,
    settings: RaySettings | None,
) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    """Run the search; (Tune's best config, per-trial results, trials stopped early)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    ensure_ray(settings)
    cpus = (settings or RaySettings()).cpus_per_worker
    scheduler = ASHAScheduler(time_attr="round", max_t=max_t, grace_period=min(grace_period, max_t), reduction_factor=3)
    searcher = BasicVariantGenerator(points_to_evaluate=[default], random_state=seed)
    with storage(settings) as path:
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(trainable, **data), {"cpu": cpus}),
            param_space=dict(space),
            tune_config=tune.TuneConfig(
                metric=METRIC,
                mode="max",
                scheduler=scheduler,
                search_alg=searcher,
                num_samples=num_samples,
                max_concurrent_trials=max_concurrent,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(storage_path=path, name=f"{name}-{uuid.uuid4().hex[:8]}", verbose=0),
        )
        searched = time.perf_counter()
        grid = tuner.fit()
        logger.info("%s: %d trials in %.1f s", name, len(grid), time.perf_counter() - searched)
        results, stopped = [], 0
        for i in range(len(grid)):
            result = grid[i]
            if result.error is not None:
                raise RuntimeError(f"a {name} trial failed: {result.error!r}")
            metrics = result.metrics or {}
            reached = int(metrics.get("round", 0))
            stopped += reached < max_t
            results.append(
                {"config": _json_config(result.config or {}), METRIC: metrics.get(METRIC), "rounds": reached}
            )
        # Each trial reports its best so far: its last report is its score.
        best = grid.get_best_result(metric=METRIC, mode="max", scope="last")
        return _json_config(best.config or {}), results, stopped


def _outcome(
    model: str,
    *,
    score: Callable[[dict[str, Any]], float],
    tune_best: dict[str, Any],
    default: dict[str, Any],
    results: list[dict[str, Any]],
    stopped: int,
    started: float,
) -> TuneOutcome:
    default_score = score(default)
    tune_best_score = default_score if tune_best == default else score(tune_best)
    improved = tune_best_score > default_score
    return TuneOutcome(
        model=model,
        best_config=tune_best if improved else default,
        best_score=tune_best_score if improved else default_score,
        default_config=default,
        default_score=default_score,
        improved=improved,
        tune_best_config=tune_best,
        tune_best_score=tune_best_score,
        trials=len(results),
        stopped_early=stopped,
        seconds=time.perf_counter() - started,
        results=results,
    )


def tune_lightgbm(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    *,
    features: Sequence[str],
    categorical: Sequence[str] = (),
    space: Mapping[str, Any] | None = None,
    num_samples: int = 12,
    num_boost_round: int = 300,
    min_rounds: int = 100,
    report_every: int = 5,
    max_concurrent: int = 2,
    seed: int = 0,
    settings: RaySettings | None = None,
) -> TuneOutcome:
    """ASHA search of LambdaRank parameters on the validation groups (NDCG@10)."""
    from training.ranker import DEFAULT_PARAMS, train_ranker

    started = time.perf_counter()
    space = dict(space if space is not None else lightgbm_space())
    default = _json_config({key: DEFAULT_PARAMS[key] for key in space})
    data = {
        "inputs": _lightgbm_inputs(train, valid, features=list(features), categorical=list(categorical)),
        "num_boost_round": num_boost_round,
        "min_rounds": min(min_rounds, num_boost_round),
        "report_every": report_every,
    }
    tune_best, results, stopped = _search(
        _lightgbm_trial,
        data,
        space=space,
        default=default,
        name="tune_lightgbm",
        num_samples=num_samples,
        max_t=num_boost_round,
        grace_period=min(min_rounds, num_boost_round),
        max_concurrent=max_concurrent,
        seed=seed,
        settings=settings,
    )

    def score(config: dict[str, Any]) -> float:
        return train_ranker(
            train,
            valid,
            features=list(features),
            categorical=list(categorical),
            params=config,
            num_boost_round=num_boost_round,
            min_rounds=min_rounds,
        ).valid_ndcg

    return _outcome(
        "lightgbm", score=score, tune_best=tune_best, default=default, results=results, stopped=stopped, started=started
    )


def tune_torch_ranker(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    *,
    features: Sequence[str],
    categorical: Sequence[str] = (),
    space: Mapping[str, Any] | None = None,
    num_samples: int = 8,
    max_epochs: int = 40,
    grace_period: int = 5,
    max_concurrent: int = 2,
    seed: int = 0,
    settings: RaySettings | None = None,
) -> TuneOutcome:
    """ASHA search of TorchRanker parameters on the validation groups (NDCG@10 per epoch)."""
    # torch is imported by the torch search only: LightGBM trials start without it.
    from models.torch_ranker import DEFAULT_PARAMS as TORCH_DEFAULTS
    from models.torch_ranker import TorchRanker

    started = time.perf_counter()
    space = dict(space if space is not None else torch_space())
    default = _json_config({key: TORCH_DEFAULTS[key] for key in space})
    if isinstance(default.get("hidden"), list):
        default["hidden"] = ",".join(str(width) for width in default["hidden"])
    data = {
        "train": train,
        "valid": valid,
        "features": list(features),
        "categorical": list(categorical),
        "max_epochs": max_epochs,
    }
    tune_best, results, stopped = _search(
        _torch_trial,
        data,
        space=space,
        default=default,
        name="tune_torch_ranker",
        num_samples=num_samples,
        max_t=max_epochs,
        grace_period=grace_period,
        max_concurrent=max_concurrent,
        seed=seed,
        settings=settings,
    )

    def score(config: dict[str, Any]) -> float:
        params = {**torch_params(config), "epochs": max_epochs}
        return TorchRanker().fit(train, valid, features=features, categorical=categorical, params=params).valid_ndcg

    return _outcome(
        "torch_ranker",
        score=score,
        tune_best=tune_best,
        default=default,
        results=results,
        stopped=stopped,
        started=started,
    )


def tune_rankers(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    *,
    features: Sequence[str],
    categorical: Sequence[str] = (),
    lightgbm: Mapping[str, Any] | None = None,
    torch: Mapping[str, Any] | None = None,
    settings: RaySettings | None = None,
) -> dict[str, TuneOutcome]:
    """Both searches; `lightgbm` / `torch` are keyword arguments of `tune_lightgbm` / `tune_torch_ranker`."""
    return {
        "lightgbm": tune_lightgbm(
            train, valid, features=features, categorical=categorical, settings=settings, **dict(lightgbm or {})
        ),
        "torch_ranker": tune_torch_ranker(
            train, valid, features=features, categorical=categorical, settings=settings, **dict(torch or {})
        ),
    }
