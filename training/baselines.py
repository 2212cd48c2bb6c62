"""Baseline scorings of candidate rows: popularity, random, and the simulator's oracle."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

# The simulator's ground truth: scores for `item_ids` as `user_id` truly prefers them.
Oracle = Callable[[str, Sequence[str]], Sequence[float] | np.ndarray]


def popularity_scores(frame: pd.DataFrame, *, column: str) -> np.ndarray:
    """Rank by an item popularity feature; items without a value rank last."""
    return pd.to_numeric(frame[column], errors="coerce").fillna(-np.inf).to_numpy(dtype=np.float64)


def random_scores(n: int, *, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random(n)


def oracle_scores(frame: pd.DataFrame, *, oracle: Oracle) -> np.ndarray:
    """Ask the oracle once per request group (the user and the items shown together)."""
    out = np.empty(len(frame), dtype=np.float64)
    items = frame["item_id"].astype(str).to_numpy()
    # `indices` are row positions, whatever the frame's index.
    for (_, user_id), rows in frame.groupby(["request_id", "user_id"], sort=False).indices.items():
        values = np.asarray(oracle(str(user_id), items[rows].tolist()), dtype=np.float64)
        if values.shape != (len(rows),):
            raise ValueError(f"oracle returned {values.shape} scores for {len(rows)} items")
        out[rows] = values
    return out


# --- top-k lists over the catalogue (user_id, item_id, rank) -------------------------------------------------


def _lists(users: Sequence[str], items: np.ndarray, k: int) -> pd.DataFrame:
    """One row per (user, item) of `items` (users × k), ranks from 1."""
    k = items.shape[1]
    return pd.DataFrame(
        {
            "user_id": np.repeat(np.asarray(users, dtype=object), k),
            "item_id": items.ravel(),
            "rank": np.tile(np.arange(1, k + 1), len(users)),
        }
    )


def popularity_recs(users: Sequence[str], item_counts: pd.Series, *, k: int) -> pd.DataFrame:
    """The same k most used items for every user (ties by item id)."""
    ordered = item_counts.sort_index().sort_values(ascending=False, kind="stable").index[:k].to_numpy(dtype=object)
    return _lists(users, np.tile(ordered, (len(users), 1)), k)


def random_recs(users: Sequence[str], item_ids: Sequence[str], *, k: int, seed: int = 0) -> pd.DataFrame:
    """k distinct catalogue items per user, drawn at random."""
    rng = np.random.default_rng(seed)
    catalogue = np.asarray(item_ids, dtype=object)
    k = min(k, len(catalogue))
    picks = np.stack([rng.choice(len(catalogue), size=k, replace=False) for _ in users]) if users else np.empty((0, k))
    return _lists(users, catalogue[picks.astype(np.int64)], k)


def oracle_recs(
    users: Sequence[str], item_ids: Sequence[str], *, oracle: Oracle, k: int, at: Any = None
) -> pd.DataFrame:
    """Each user's k catalogue items of highest true utility (the simulator's ground truth), at moment `at`
    when given (an oracle with state over time, like the simulator's recovery, then takes `at=`)."""
    catalogue = np.asarray(item_ids, dtype=object)
    k = min(k, len(catalogue))
    rows = []
    extra = {} if at is None else {"at": at}
    for user in users:
        utility = np.asarray(oracle(str(user), catalogue.tolist(), **extra), dtype=np.float64)
        rows.append(catalogue[np.argsort(-utility, kind="stable")[:k]])
    return _lists(users, np.stack(rows) if rows else np.empty((0, k), dtype=object), k)
