"""Popularity, global or per user segment (e.g. goal × level), with an exponential recency half-life."""

from __future__ import annotations

from collections.abc import Sequence

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


def segment_keys(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """ "value|value" of the segment columns per row; nan when any of them is missing."""
    present = frame[list(columns)]
    keys = present.astype(str).agg("|".join, axis=1)
    return keys.where(present.notna().all(axis=1))


class PopularityGenerator(ScoringGenerator):
    """The most used items, recency-weighted; per segment when `segment_columns` name user attributes.

    A user's segment is the values of `segment_columns` (e.g. goal and level) in the users frame, given to
    `fit` for the training users and to `recommend` for the users asked about (so cold users get their
    segment's list, and a known user's changed goal counts at once); without a users frame, the values of
    the same columns on the user's latest interaction. Users of an unknown segment get the global list.
    """

    _PARAMS = ("half_life_days", "segment_columns", "name")
    _STATE = ("global_scores", "segment_scores", "user_segment")
    _JSON_STATE = ("segment_labels",)

    def __init__(
        self,
        *,
        half_life_days: float | None = None,
        segment_columns: Sequence[str] | None = None,
        name: str = "popularity",
    ) -> None:
        self.half_life_days = half_life_days
        self.segment_columns = list(segment_columns) if segment_columns else None
        self.name = name

    def _fit(self, interactions: pd.DataFrame, items: pd.DataFrame | None) -> None:
        weights = recency_weights(interactions, self.half_life_days)
        columns = pd.Index(self.index.item_ids).get_indexer(interactions["item_id"])
        self.global_scores = np.bincount(columns, weights=weights, minlength=self.index.n_items)
        self.global_scores = self.global_scores / max(self.global_scores.sum(), 1e-12)
        self.user_segment = np.zeros(len(self.index.user_ids), dtype=np.int64)  # 0: the global list
        self.segment_scores = self.global_scores[None, :]
        self.segment_labels: list[str] = []
        if self.segment_columns and set(self.segment_columns) <= set(interactions.columns):
            self._segment(interactions, segment_keys(interactions, self.segment_columns))

    def _fit_users(self, interactions: pd.DataFrame, users_frame: pd.DataFrame) -> None:
        if not self.segment_columns or not set(self.segment_columns) <= set(users_frame.columns):
            return
        by_user = segment_keys(users_frame, self.segment_columns)
        keys = interactions["user_id"].map(by_user)
        if set(self.segment_columns) <= set(interactions.columns):  # a user not in the frame keeps the row's
            keys = keys.fillna(segment_keys(interactions, self.segment_columns))
        self._segment(interactions, keys)

    def _segment(self, interactions: pd.DataFrame, keys: pd.Series) -> None:
        """Per-segment tables from each interaction's segment key; each user's segment is their latest one."""
        weights = recency_weights(interactions, self.half_life_days)
        columns = pd.Index(self.index.item_ids).get_indexer(interactions["item_id"])
        codes, labels = pd.factorize(keys)  # nan keys -> -1
        used = codes >= 0
        table = np.zeros((len(labels), self.index.n_items))
        np.add.at(table, (codes[used], columns[used]), weights[used])
        table /= np.maximum(table.sum(axis=1, keepdims=True), 1e-12)
        self.segment_scores = np.vstack([self.global_scores, table + _GLOBAL_PRIOR * self.global_scores])
        self.segment_labels = [str(label) for label in labels]
        latest = pd.DataFrame({"row": self.index.codes(interactions["user_id"].tolist()), "segment": codes})
        if "timestamp" in interactions:
            latest = latest.iloc[np.argsort(interactions["timestamp"].to_numpy(), kind="stable")]
        last = latest[latest["segment"] >= 0].groupby("row")["segment"].last()
        self.user_segment[:] = 0
        self.user_segment[last.index.to_numpy()] = last.to_numpy() + 1

    def _score(self, rows: np.ndarray) -> np.ndarray:
        return self.segment_scores[self.user_segment[rows]]

    def segment_use(self, attributes: pd.DataFrame) -> np.ndarray | None:
        """How much the segment of the first attribute row used each item itself (without the share of
        global popularity its scores are blended with); None when the row names no known segment."""
        segment = int(self._segments_of(np.asarray([-1]), attributes.iloc[:1])[0])
        if segment == 0:
            return None
        return self.segment_scores[segment] - _GLOBAL_PRIOR * self.global_scores

    def _score_users(self, codes: np.ndarray, attributes: pd.DataFrame | None) -> np.ndarray:
        return self.segment_scores[self._segments_of(codes, attributes)]

    def _segments_of(self, codes: np.ndarray, attributes: pd.DataFrame | None) -> np.ndarray:
        """Each user's row of segment_scores (0: the global list)."""
        segment = np.where(codes >= 0, self.user_segment[np.maximum(codes, 0)], 0)
        if attributes is not None and self.segment_labels and set(self.segment_columns or ()) <= set(attributes):
            # The keys `segment_keys` gives, row by row (pandas costs milliseconds for the one row of a request).
            lookup = {label: j for j, label in enumerate(self.segment_labels)}
            columns = [attributes[c].tolist() for c in self.segment_columns or ()]
            described = np.asarray(
                [
                    lookup.get("|".join(str(v) for v in values), -1) if not any(pd.isna(v) for v in values) else -1
                    for values in zip(*columns, strict=True)
                ],
                dtype=np.int64,
            )
            segment = np.where(described >= 0, described + 1, segment)
        return segment
