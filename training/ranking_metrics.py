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
    user_codes, users = pd.factorize(relevant["user_id"])
    item_codes, items = pd.factorize(relevant["item_id"])
    n_relevant = np.bincount(user_codes, minlength=len(users))
    top = recs.loc[recs["rank"] <= k, ["user_id", "item_id", "rank"]]
    rec_users = users.get_indexer(top["user_id"])
    keep = rec_users >= 0  # recommendations of users without held-out items do not count
    rec_users, rec_rank = rec_users[keep], top["rank"].to_numpy(dtype=np.float64)[keep]
    rec_items = items.get_indexer(top["item_id"])[keep]  # -1: never relevant
    # Ranks renumbered 1..n per user in case the list has gaps or ties.
    order = np.lexsort((rec_rank, rec_users))
    rec_users, rec_items = rec_users[order], rec_items[order]
    starts = np.r_[0, np.flatnonzero(np.diff(rec_users)) + 1] if len(rec_users) else np.array([], dtype=np.int64)
    position = np.arange(len(rec_users)) - np.repeat(starts, np.diff(np.r_[starts, len(rec_users)]))
    rank = position + 1.0
    keys = user_codes.astype(np.int64) * len(items) + item_codes
    hit = (rec_items >= 0) & np.isin(rec_users.astype(np.int64) * len(items) + rec_items, keys)
    hits = np.bincount(rec_users[hit], minlength=len(users)).astype(np.float64)
    dcg = np.bincount(rec_users[hit], weights=1.0 / np.log2(rank[hit] + 1.0), minlength=len(users))
    # Precision at each hit's rank: the hit's number among the user's hits over its rank.
    hit_users = rec_users[hit]
    hit_starts = np.r_[0, np.flatnonzero(np.diff(hit_users)) + 1] if len(hit_users) else np.array([], dtype=np.int64)
    hit_number = np.arange(len(hit_users)) - np.repeat(hit_starts, np.diff(np.r_[hit_starts, len(hit_users)])) + 1
    precision_sum = np.bincount(hit_users, weights=hit_number / rank[hit], minlength=len(users))
    ideal_hits = np.minimum(n_relevant, k)
    discounts = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))
    out = pd.DataFrame(
        {
            "n_relevant": n_relevant,
            "hits": hits,
            "ndcg": dcg / discounts[ideal_hits - 1],
            "precision": hits / k,
            "recall": hits / n_relevant,
            "ap": precision_sum / ideal_hits,
        },
        index=pd.Index(users, name="user_id"),
    )
    return out


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
