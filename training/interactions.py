"""Interactions files (MovieLens `u.data`, CSV with a header) and per-user evaluation splits.

The common frame has `user_id`, `item_id`, `weight` (1 per interaction: every interaction counts, as
binary relevance does), `timestamp` (seconds; the row order when the file has none) and `rating` when
the file has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

Format = Literal["movielens", "csv"]
_MOVIELENS = ["user_id", "item_id", "rating", "timestamp"]


def load_interactions(
    path: str | Path,
    *,
    format: Format = "csv",
    user_col: str = "user_id",
    item_col: str = "item_id",
    rating_col: str | None = "rating",
    time_col: str | None = "timestamp",
) -> pd.DataFrame:
    """Read a file into the common frame; for CSV the named columns (rating and time may be absent)."""
    if format == "movielens":
        raw = pd.read_csv(path, sep="\t", header=None, names=_MOVIELENS, dtype={0: str, 1: str})
        user_col, item_col, rating_col, time_col = _MOVIELENS
    elif format == "csv":
        raw = pd.read_csv(path, dtype={user_col: str, item_col: str})
    else:
        raise ValueError(f"unknown format {format!r}: choose movielens or csv")
    missing = [c for c in (user_col, item_col) if c not in raw.columns]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(missing)} (columns: {', '.join(map(str, raw.columns))})")
    frame = pd.DataFrame({"user_id": raw[user_col].astype(str), "item_id": raw[item_col].astype(str)})
    frame["weight"] = 1.0
    frame["timestamp"] = _timestamps(raw[time_col]) if time_col and time_col in raw.columns else np.arange(len(raw))
    if rating_col and rating_col in raw.columns:
        frame["rating"] = pd.to_numeric(raw[rating_col], errors="coerce")
    frame = frame.dropna(subset=["user_id", "item_id"])
    return frame.drop_duplicates(["user_id", "item_id"], keep="last").reset_index(drop=True)


def _timestamps(values: pd.Series) -> pd.Series:
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        return numeric.astype(np.float64)
    parsed = pd.to_datetime(values, errors="coerce", utc=True)
    return (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().fillna(0.0)


@dataclass(frozen=True)
class Protocol:
    kind: Literal["random", "time", "leave-last-out"]
    train_fraction: float = 1.0

    @classmethod
    def parse(cls, text: str) -> Protocol:
        """`random:0.75`, `time:0.8` or `leave-last-out`."""
        if text == "leave-last-out":
            return cls("leave-last-out")
        kind, _, fraction = text.partition(":")
        if kind not in ("random", "time") or not fraction:
            raise ValueError(f"unknown protocol {text!r}: use random:FRACTION, time:FRACTION or leave-last-out")
        value = float(fraction)
        if not 0.0 < value < 1.0:
            raise ValueError(f"the train fraction of {text!r} must be between 0 and 1")
        return cls(kind, value)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return self.kind if self.kind == "leave-last-out" else f"{self.kind}:{self.train_fraction:g}"


def split_per_user(frame: pd.DataFrame, protocol: Protocol, *, seed: int = 42) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): each user's interactions split by the protocol; a user with one interaction stays in train.

    random: a seeded shuffle per user, the first round(n × fraction) (at least 1) to train; time: the
    user's oldest round(n × fraction) to train; leave-last-out: the user's newest interaction to test.
    """
    rng = np.random.default_rng(seed)
    if protocol.kind == "random":
        order_key = rng.random(len(frame))
    else:
        # Ties in time broken at random too, so the split does not depend on the file's row order.
        order_key = frame["timestamp"].to_numpy(dtype=np.float64) + rng.random(len(frame)) * 1e-6
    ordered = frame.assign(_key=order_key).sort_values(["user_id", "_key"], kind="stable")
    position = ordered.groupby("user_id", sort=False).cumcount().to_numpy()
    count = ordered.groupby("user_id", sort=False)["item_id"].transform("size").to_numpy()
    n_train = count - 1 if protocol.kind == "leave-last-out" else np.round(count * protocol.train_fraction)
    n_train = np.maximum(n_train, 1)
    in_train = position < n_train
    ordered = ordered.drop(columns="_key")
    return ordered[in_train].reset_index(drop=True), ordered[~in_train].reset_index(drop=True)
