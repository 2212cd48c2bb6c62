"""Popularity, global or per user segment, with an exponential recency half-life."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.generators.base import ScoringGenerator, interaction_weights

_DAY = 86_400.0
# How much of the global popularity a segment's own counts are blended with: breaks ties and keeps
# small segments from recommending their few items only.
_GLOBAL_PRIOR = 0.05


def recency_weights(interactions: pd.DataFrame, half_life_days: float | None) -> np.ndarray:
    """Each interaction's weight × 0.5 ** (age / half-life), age measured from the newest interaction."""
    weights = interaction_weights(interactions)
    if half_life_days is None or "timestamp" not in interactions:
        return weights
    ts = interactions["timestamp"].to_numpy(dtype=np.float64)
    age_days = (ts.max() - ts) / _DAY
    return weights * np.power(0.5, age_days / half_life_days)


class PopularityGenerator(ScoringGenerator):
    """The most used items, recency-weighted; per segment when `segment_col` names a column of interactions.

    A user's segment is the one of their latest interaction (e.g. "goal|level"); users of an unknown
    segment, and users never seen, get the global list.
    """

    def __init__(
        self, *, half_life_days: float | None = None, segment_col: str | None = None, name: str = "popularity"
    ) -> None:
        self.half_life_days = half_life_days
        self.segment_col = segment_col
        self.name = name

    def _fit(self, interactions: pd.DataFrame, items: pd.DataFrame | None) -> None:
        weights = recency_weights(interactions, self.half_life_days)
        columns = pd.Index(self.index.item_ids).get_indexer(interactions["item_id"])
        n = self.index.n_items
        self.global_scores = np.bincount(columns, weights=weights, minlength=n)
        self.global_scores = self.global_scores / max(self.global_scores.sum(), 1e-12)
        self.user_segment = np.zeros(len(self.index.user_ids), dtype=np.int64)
        self.segment_scores = self.global_scores[None, :]
        if self.segment_col is None:
            return
        segments, labels = pd.factorize(interactions[self.segment_col].astype(str))
        table = np.zeros((len(labels), n))
        np.add.at(table, (segments, columns), weights)
        table /= np.maximum(table.sum(axis=1, keepdims=True), 1e-12)
        self.segment_scores = np.vstack([self.global_scores, table + _GLOBAL_PRIOR * self.global_scores])
        self.segment_labels = list(labels)
        latest = pd.DataFrame({"row": self.index.codes(interactions["user_id"].tolist()), "segment": segments})
        if "timestamp" in interactions:
            latest = latest.iloc[np.argsort(interactions["timestamp"].to_numpy(), kind="stable")]
        last = latest.groupby("row")["segment"].last()
        self.user_segment[last.index.to_numpy()] = last.to_numpy() + 1  # 0 is the global list

    def _score(self, rows: np.ndarray) -> np.ndarray:
        return self.segment_scores[self.user_segment[rows]]

    def _score_unknown(self) -> np.ndarray:
        return self.global_scores
