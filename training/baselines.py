"""Baseline scorings of candidate rows: popularity, random, and the simulator's oracle."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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
