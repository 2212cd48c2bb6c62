"""Top-k metrics of recommendation lists against held-out interactions (binary relevance).

Unlike `training.evaluate` (NDCG of a scored group of shown rows), the ideal here is over every held-out
item of the user, retrieved or not, as in the MovieLens top-k protocol:
- NDCG@k: DCG = sum of 1/log2(rank + 1) over relevant items in the top k; IDCG = the same for
  min(k, #relevant) hits at the top;
- Precision@k = hits / k; Recall@k = hits / #relevant;
- MAP@k: AP = sum over hit ranks r <= k of precision@r, divided by min(k, #relevant);
- every test user with a relevant item counts, a user without recommendations scores 0;
- coverage: distinct recommended items / catalogue size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def per_user_metrics(recs: pd.DataFrame, test: pd.DataFrame, *, k: int = 10) -> pd.DataFrame:
    """Per test user: ndcg, precision, recall, ap at k. `recs` has user_id, item_id, rank (1 = best)."""
    relevant = test[["user_id", "item_id"]].drop_duplicates()
    n_relevant = relevant.groupby("user_id").size().rename("n_relevant")
    top = recs[recs["rank"] <= k][["user_id", "item_id", "rank"]]
    # Ranks renumbered 1..n per user in case the list has gaps or ties.
    top = top.sort_values(["user_id", "rank"], kind="stable")
    top = top.assign(rank=top.groupby("user_id").cumcount() + 1)
    hits = top.merge(relevant, on=["user_id", "item_id"], how="inner").sort_values(["user_id", "rank"])
    hits["hit_number"] = hits.groupby("user_id").cumcount() + 1
    hits["gain"] = 1.0 / np.log2(hits["rank"] + 1.0)
    hits["precision_at_rank"] = hits["hit_number"] / hits["rank"]
    by_user = hits.groupby("user_id").agg(
        hits=("item_id", "size"), dcg=("gain", "sum"), precision_sum=("precision_at_rank", "sum")
    )
    out = pd.DataFrame(n_relevant).join(by_user, how="left").fillna({"hits": 0, "dcg": 0.0, "precision_sum": 0.0})
    ideal_hits = np.minimum(out["n_relevant"].to_numpy(), k)
    discounts = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))
    out["ndcg"] = out["dcg"] / discounts[ideal_hits - 1]
    out["precision"] = out["hits"] / k
    out["recall"] = out["hits"] / out["n_relevant"]
    out["ap"] = out["precision_sum"] / ideal_hits
    return out[["n_relevant", "hits", "ndcg", "precision", "recall", "ap"]]


def topk_metrics(
    recs: pd.DataFrame, test: pd.DataFrame, *, k: int = 10, n_items: int | None = None
) -> dict[str, float]:
    """Means over test users: `ndcg@k`, `precision@k`, `recall@k`, `map@k`, and `coverage` when `n_items` is given."""
    per_user = per_user_metrics(recs, test, k=k)
    metrics = {
        f"ndcg@{k}": float(per_user["ndcg"].mean()),
        f"precision@{k}": float(per_user["precision"].mean()),
        f"recall@{k}": float(per_user["recall"].mean()),
        f"map@{k}": float(per_user["ap"].mean()),
        "users": float(len(per_user)),
    }
    if n_items:
        metrics["coverage"] = recs[recs["rank"] <= k]["item_id"].nunique() / n_items
    return metrics
