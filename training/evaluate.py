"""NDCG@k per ranking group and the comparison of a model with its baselines.

Conventions (the same as LightGBM's lambdarank metric, so training and
evaluation agree):
- gain of a row is 2**label - 1, discount 1 / log2(rank + 1) with rank from 1;
- NDCG of a group = DCG@k of the scored order / DCG@k of the ideal order;
- groups without any positive label are EXCLUDED from the mean (their NDCG is
  undefined: every order is as good as every other). LightGBM counts them as 1,
  which inflates the figure by the share of such groups; we report how many
  groups were evaluated instead;
- ties in the scores are broken by a seeded random order, never by the shown
  position (that would leak the logging policy's ranking into a baseline).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from training.baselines import Oracle, oracle_scores, popularity_scores, random_scores


def _dcg_at_k(codes: np.ndarray, gains: np.ndarray, order_keys: tuple[np.ndarray, ...], k: int) -> np.ndarray:
    """Per group, DCG@k of rows ordered by `order_keys` (np.lexsort: last key primary) within each group."""
    order = np.lexsort((*order_keys, codes))
    sorted_codes = codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    rank = np.arange(len(order)) - group_start  # 0-based within the group
    discount = np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0)
    return np.bincount(sorted_codes, weights=gains[order] * discount, minlength=int(codes.max()) + 1)


def ndcg_per_group(
    groups: np.ndarray | pd.Series,
    labels: np.ndarray | pd.Series,
    scores: np.ndarray | pd.Series,
    *,
    k: int = 10,
    seed: int = 0,
) -> pd.Series:
    """NDCG@k of each group (indexed by group id); groups without a positive label are left out."""
    groups, labels = np.asarray(groups), np.asarray(labels, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if not (len(groups) == len(labels) == len(scores)):
        raise ValueError("groups, labels and scores must have the same length")
    if len(groups) == 0:
        return pd.Series(dtype=np.float64)
    codes, uniques = pd.factorize(groups, sort=False)
    gains = np.power(2.0, labels) - 1.0
    tiebreak = np.random.default_rng(seed).random(len(scores))
    dcg = _dcg_at_k(codes, gains, (tiebreak, -scores), k)
    ideal = _dcg_at_k(codes, gains, (-labels,), k)
    has_positive = ideal > 0
    return pd.Series(dcg[has_positive] / ideal[has_positive], index=np.asarray(uniques)[has_positive])


def mean_ndcg(frame: pd.DataFrame, scores: np.ndarray, *, k: int = 10, seed: int = 0) -> float:
    """Mean NDCG@k over the request groups of `frame` that hold a positive label (nan if none)."""
    per_group = ndcg_per_group(frame["request_id"], frame["label"], scores, k=k, seed=seed)
    return float(per_group.mean()) if len(per_group) else float("nan")


def compare_rankers(
    frame: pd.DataFrame, *, scores: Mapping[str, np.ndarray], k: int = 10, seed: int = 0
) -> dict[str, float]:
    """NDCG@k of every named scoring of the same rows: `{"<name>_ndcg@10": value}` plus group counts.

    The name "model" gets the plain key `ndcg@10` as well.
    """
    metrics: dict[str, float] = {}
    for name, values in scores.items():
        value = mean_ndcg(frame, np.asarray(values), k=k, seed=seed)
        metrics[f"{name}_ndcg@{k}"] = value
        if name == "model":
            metrics[f"ndcg@{k}"] = value
    groups = frame.groupby("request_id", sort=False)["label"].max()
    metrics["eval_groups"] = float(len(groups))
    metrics["eval_groups_with_positive"] = float((groups > 0).sum())
    metrics["eval_rows"] = float(len(frame))
    return metrics


def evaluate_ranking(
    frame: pd.DataFrame,
    *,
    model_scores: np.ndarray,
    popularity_column: str | None = None,
    oracle: Oracle | None = None,
    k: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """The model against popularity, random and (if given) the oracle on the same held-out rows.

    Keys: `ndcg@10` (the model, also `model_ndcg@10`), `popularity_ndcg@10` (when
    the column is given), `random_ndcg@10`, `oracle_ndcg@10` and `model_vs_oracle`
    (when an oracle is given), and the group counts. MLflow spells `@` as `_at_`.
    """
    scores: dict[str, np.ndarray] = {"model": model_scores, "random": random_scores(len(frame), seed=seed + 1)}
    if popularity_column is not None:
        scores["popularity"] = popularity_scores(frame, column=popularity_column)
    if oracle is not None:
        scores["oracle"] = oracle_scores(frame, oracle=oracle)
    metrics: dict[str, Any] = compare_rankers(frame, scores=scores, k=k, seed=seed)
    if oracle is not None and metrics[f"oracle_ndcg@{k}"] > 0:
        metrics["model_vs_oracle"] = metrics[f"ndcg@{k}"] / metrics[f"oracle_ndcg@{k}"]
    return metrics
