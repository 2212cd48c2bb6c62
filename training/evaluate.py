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

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from training.baselines import Oracle, oracle_scores, popularity_scores, random_scores
from training.ranking_metrics import per_user_metrics


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


# --- slates: more than NDCG ----------------------------------------------------------------------------------


def _ranked_groups(frame: pd.DataFrame, scores: np.ndarray, *, seed: int) -> pd.DataFrame:
    """Rows with their 1-based rank inside their request group by score (ties broken by a seeded order)."""
    tiebreak = np.random.default_rng(seed).random(len(frame))
    ranked = pd.DataFrame(
        {
            "group": frame["request_id"].to_numpy(),
            "label": frame["label"].to_numpy(dtype=np.float64),
            "score": np.asarray(scores, dtype=np.float64),
            "tie": tiebreak,
        }
    )
    ranked = ranked.sort_values(["group", "score", "tie"], ascending=[True, False, True], kind="stable")
    ranked["rank"] = ranked.groupby("group", sort=False).cumcount() + 1
    return ranked


def slate_metrics(frame: pd.DataFrame, scores: np.ndarray, *, k: int = 10, seed: int = 0) -> dict[str, float]:
    """Per request group, then averaged over the groups holding a positive: NDCG@k (graded labels, as
    `ndcg_per_group`), MAP@k and MRR (relevant = label > 0; MRR over the whole slate)."""
    ranked = _ranked_groups(frame, scores, seed=seed)
    ranked["hit"] = (ranked["label"] > 0).astype(np.float64)
    per_group = ranked.groupby("group", sort=False)
    n_relevant = per_group["hit"].sum()
    positive = n_relevant[n_relevant > 0].index
    hits = ranked[ranked["hit"] > 0].copy()
    hits["hit_number"] = hits.groupby("group", sort=False).cumcount() + 1
    first = hits.groupby("group", sort=False)["rank"].min()
    top = hits[hits["rank"] <= k]
    precision_sum = (top["hit_number"] / top["rank"]).groupby(top["group"], sort=False).sum()
    ap = precision_sum.reindex(positive, fill_value=0.0) / np.minimum(n_relevant[positive], k)
    ndcg = ndcg_per_group(frame["request_id"], frame["label"], scores, k=k, seed=seed)
    return {
        f"ndcg@{k}": float(ndcg.mean()) if len(ndcg) else float("nan"),
        f"map@{k}": float(ap.mean()) if len(ap) else float("nan"),
        "mrr": float((1.0 / first.reindex(positive)).mean()) if len(positive) else float("nan"),
    }


def ndcg_curve(frame: pd.DataFrame, scores: np.ndarray, ks: Sequence[int], *, seed: int = 0) -> list[float]:
    """Mean NDCG@k of the slates for each k of `ks`."""
    return [mean_ndcg(frame, scores, k=k, seed=seed) for k in ks]


def calibration(frame: pd.DataFrame, scores: np.ndarray, *, bins: int = 10) -> pd.DataFrame:
    """Rows grouped by score quantile: mean score, mean label, share of positive labels and row count."""
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        return pd.DataFrame(columns=["bin", "mean_score", "mean_label", "positive_rate", "rows"])
    bin_of = pd.qcut(pd.Series(scores).rank(method="first"), q=min(bins, len(scores)), labels=False)
    table = pd.DataFrame({"bin": bin_of.to_numpy(), "score": scores, "label": frame["label"].to_numpy(dtype=float)})
    table["positive"] = (table["label"] > 0).astype(np.float64)
    out = table.groupby("bin").agg(
        mean_score=("score", "mean"),
        mean_label=("label", "mean"),
        positive_rate=("positive", "mean"),
        rows=("score", "size"),
    )
    return out.reset_index()


# --- top-k lists over the whole catalogue --------------------------------------------------------------------


def topk_report(
    recs: pd.DataFrame,
    relevant: pd.DataFrame,
    *,
    k: int = 10,
    n_items: int,
    item_counts: pd.Series | None = None,
) -> dict[str, float]:
    """Top-k lists (`user_id, item_id, rank`) against the held-out relevant pairs (`user_id, item_id`).

    Means over the users holding a relevant pair (a user without a list scores 0), as
    `training.ranking_metrics`: `ndcg@k`, `recall@k`, `map@k`, `mrr` (1 / rank of the first hit within
    the top k, 0 without one); and over the lists: `coverage` (distinct recommended items / `n_items`)
    and `novelty` (mean self-information -log2 p(item) of the recommended items, p from `item_counts`
    of the training interactions with add-one smoothing over the catalogue).
    """
    per_user = per_user_metrics(recs, relevant, k=k)
    top = recs[recs["rank"] <= k]
    hits = top.merge(relevant[["user_id", "item_id"]].drop_duplicates(), on=["user_id", "item_id"])
    first = hits.groupby("user_id")["rank"].min()
    rr = (1.0 / first).reindex(per_user.index, fill_value=0.0)
    out = {
        f"ndcg@{k}": float(per_user["ndcg"].mean()) if len(per_user) else float("nan"),
        f"recall@{k}": float(per_user["recall"].mean()) if len(per_user) else float("nan"),
        f"map@{k}": float(per_user["ap"].mean()) if len(per_user) else float("nan"),
        "mrr": float(rr.mean()) if len(per_user) else float("nan"),
        "users": float(len(per_user)),
        "coverage": float(top["item_id"].nunique() / n_items) if n_items else float("nan"),
    }
    if item_counts is not None and len(top):
        counts = item_counts.reindex(top["item_id"]).fillna(0.0).to_numpy(dtype=np.float64)
        p = (counts + 1.0) / (float(item_counts.sum()) + n_items)
        out["novelty"] = float(np.mean(-np.log2(p)))
    return out


def topk_curve(recs: pd.DataFrame, relevant: pd.DataFrame, ks: Sequence[int]) -> list[float]:
    """Mean top-k NDCG@k for each k of `ks` (lists must be at least max(ks) long to be meaningful)."""
    return [float(per_user_metrics(recs, relevant, k=k)["ndcg"].mean()) for k in ks]


def permutation_importance(
    frame: pd.DataFrame,
    score: Callable[[pd.DataFrame], np.ndarray],
    features: Sequence[str],
    *,
    k: int = 10,
    seed: int = 0,
) -> dict[str, float]:
    """Per feature, how much mean NDCG@k of the slates drops when its values are shuffled across rows
    (any ranker; 0 for a feature that changes nothing)."""
    rng = np.random.default_rng(seed)
    base = mean_ndcg(frame, score(frame), k=k, seed=seed)
    out = {}
    for name in features:
        if name not in frame.columns:
            continue
        shuffled = frame.copy()
        shuffled[name] = frame[name].to_numpy()[rng.permutation(len(frame))]
        out[name] = float(base - mean_ndcg(shuffled, score(shuffled), k=k, seed=seed))
    return out
