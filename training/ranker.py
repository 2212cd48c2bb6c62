"""LightGBM LambdaRank training on request groups."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.recommender import FeatureSpec, LightGBMRanker

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [10],
    # Shallow, regularised trees: a few thousand noisy click/complete groups overfit deeper ones
    # (measured on simulated populations of 300 users: +0.02-0.03 NDCG@10 over 31-leaf trees).
    "learning_rate": 0.05,
    "max_depth": 3,
    "num_leaves": 8,
    "min_data_in_leaf": 100,
    "feature_fraction": 0.9,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 10.0,
    # Small categorical columns (level, type, category): split on sets, but keep leaves populated.
    "min_data_per_group": 50,
    "cat_smooth": 10.0,
    # Two cores are shared with the rest of the machine.
    "num_threads": 2,
    "deterministic": True,
    "force_row_wise": True,
    "seed": 7,
    "verbose": -1,
}


@dataclass(frozen=True)
class TrainedRanker:
    booster: lgb.Booster
    spec: FeatureSpec
    params: dict[str, Any]
    best_iteration: int
    valid_ndcg: float
    train_rows: int
    train_groups: int
    dropped_groups: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)

    def ranker(self, *, threads: int = 1) -> LightGBMRanker:
        return LightGBMRanker(self.booster, self.spec, threads=threads)


def group_sizes(frame: pd.DataFrame, *, group_col: str = "request_id") -> np.ndarray:
    """Sizes of consecutive runs of the same group id (LightGBM's `group`); refuses split groups."""
    ids = frame[group_col].to_numpy()
    if len(ids) == 0:
        return np.empty(0, dtype=np.int64)
    starts = np.r_[0, np.flatnonzero(ids[1:] != ids[:-1]) + 1]
    if len(starts) != pd.unique(ids).size:
        raise ValueError(f"rows of a {group_col} are not contiguous: sort the frame by group first")
    return np.diff(np.r_[starts, len(ids)])


def with_positive_groups(frame: pd.DataFrame, *, group_col: str = "request_id") -> pd.DataFrame:
    """Only the groups holding a positive label: all-zero groups give LambdaRank no gradient at all."""
    keep = frame.groupby(group_col, sort=False)["label"].transform("max") > 0
    return frame[keep].reset_index(drop=True)


class _EarlyStopping:
    """LightGBM early stopping on the first validation metric, blind during the first `min_rounds`.

    NDCG on a few hundred validation groups is noisy: plain early stopping
    often keeps the first one or two trees because of a lucky start. The best
    iteration is chosen among `min_rounds` and later.
    """

    order = 30  # after record_evaluation, like LightGBM's own early stopping

    def __init__(self, *, min_rounds: int, patience: int) -> None:
        self.min_rounds = min_rounds
        self.patience = patience
        self.best_iteration = -1
        self.best_score = -np.inf
        self.best_results: list[Any] = []

    def __call__(self, env: Any) -> None:
        if env.iteration + 1 < self.min_rounds or not env.evaluation_result_list:
            return
        _, _, score, higher_is_better = env.evaluation_result_list[0]
        score = score if higher_is_better else -score
        if score > self.best_score:
            self.best_iteration, self.best_score, self.best_results = env.iteration, score, env.evaluation_result_list
        elif env.iteration - self.best_iteration >= self.patience:
            raise lgb.callback.EarlyStopException(self.best_iteration, self.best_results)


def train_ranker(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    *,
    features: list[str],
    categorical: list[str],
    params: Mapping[str, Any] | None = None,
    num_boost_round: int = 300,
    min_rounds: int = 100,
    early_stopping_rounds: int | None = 50,
    debias_position: bool = False,
) -> TrainedRanker:
    """Fit a LambdaRank booster with early stopping on the validation groups (NDCG@10).

    Both frames hold one row per (request_id, item_id) with a graded `label`,
    rows of a request contiguous. Categorical columns are encoded with levels
    frozen from the training rows (unknown levels become missing at scoring).
    """
    train_pos, valid_pos = with_positive_groups(train), with_positive_groups(valid)
    if train_pos.empty or valid_pos.empty:
        raise ValueError("no request group with a positive label to train or validate on")
    spec = FeatureSpec.fit(train_pos, names=features, categorical=categorical)
    merged = {**DEFAULT_PARAMS, **(params or {})}
    cat_names = [n for n in spec.names if n in spec.categorical]

    def dataset(frame: pd.DataFrame, reference: lgb.Dataset | None) -> lgb.Dataset:
        return lgb.Dataset(
            spec.encode(frame),
            label=frame["label"].to_numpy(),
            group=group_sizes(frame),
            # Unbiased LambdaMART: the shown position explains part of the clicks; learn that part apart.
            position=frame["position"].clip(lower=0).to_numpy() if debias_position and reference is None else None,
            feature_name=list(spec.names),
            categorical_feature=cat_names,
            reference=reference,
            params={"verbose": -1},
        )

    train_set = dataset(train_pos, None)
    valid_set = dataset(valid_pos, train_set)
    history: dict[str, Any] = {}
    callbacks: list[Any] = [lgb.record_evaluation(history)]
    stopper = None
    if early_stopping_rounds:
        stopper = _EarlyStopping(min_rounds=min(min_rounds, num_boost_round), patience=early_stopping_rounds)
        callbacks.append(stopper)
    booster = lgb.train(
        merged,
        train_set,
        num_boost_round=num_boost_round,
        valid_sets=[valid_set],
        valid_names=["valid"],
        callbacks=callbacks,
    )
    if stopper is not None and stopper.best_iteration >= 0:
        # Also when training ran to the end without stopping: predict and save with the best trees only.
        booster.best_iteration = stopper.best_iteration + 1
    curve = list(history.get("valid", {}).get("ndcg@10", []))
    best = booster.best_iteration or booster.current_iteration()
    return TrainedRanker(
        booster=booster,
        spec=spec,
        params=merged,
        best_iteration=int(best),
        valid_ndcg=float(curve[best - 1]) if curve else float("nan"),
        train_rows=len(train_pos),
        train_groups=len(group_sizes(train_pos)),
        dropped_groups=int(train["request_id"].nunique() - train_pos["request_id"].nunique()),
        history={"valid_ndcg_at_10": curve},
    )
