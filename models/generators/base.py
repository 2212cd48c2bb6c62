"""The candidate generator interface and the user × item index every matrix-based generator shares.

Interactions are a frame with columns `user_id`, `item_id`, `weight` (defaults to 1) and `timestamp`
(seconds; optional). An item attribute table, when given, is indexed by `item_id` and puts items nobody
has used yet into the catalogue (only attribute-aware generators can reach them).

`recommend` answers one frame `user_id, item_id, score, rank, source` (rank from 1, per user), so the
candidates of several sources can be merged with each source's score and rank kept as ranker features.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol, Self, runtime_checkable

import numpy as np
import pandas as pd
import scipy.sparse as sp

CANDIDATE_COLUMNS = ["user_id", "item_id", "score", "rank", "source"]
# Dense score blocks are at most this many floats (users in a batch × catalogue size).
_BLOCK_FLOATS = 1 << 22


@runtime_checkable
class CandidateGenerator(Protocol):
    """A source of scored candidates over the whole catalogue."""

    name: str

    def fit(self, interactions: pd.DataFrame, items: pd.DataFrame | None = None) -> Self: ...

    def recommend(self, users: Sequence[Hashable], k: int, *, exclude_seen: bool = True) -> pd.DataFrame: ...


@dataclass(frozen=True)
class InteractionIndex:
    """Users and items as row/column codes, and the user × item matrix of summed weights."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    matrix: sp.csr_matrix  # users × items, float64
    user_code: dict[Hashable, int]

    @classmethod
    def build(cls, interactions: pd.DataFrame, items: pd.DataFrame | None = None) -> InteractionIndex:
        known_items = pd.Index(pd.unique(interactions["item_id"]))
        if items is not None:
            known_items = known_items.append(pd.Index(items.index).difference(known_items))
        user_codes, user_ids = pd.factorize(interactions["user_id"])
        item_codes = known_items.get_indexer(interactions["item_id"])
        weights = interaction_weights(interactions)
        matrix = sp.csr_matrix(
            (weights, (user_codes, item_codes)), shape=(len(user_ids), len(known_items)), dtype=np.float64
        )
        matrix.sum_duplicates()
        user_ids = np.asarray(user_ids)
        return cls(user_ids, known_items.to_numpy(), matrix, {u: i for i, u in enumerate(user_ids)})

    @property
    def n_items(self) -> int:
        return int(self.matrix.shape[1])

    def codes(self, users: Sequence[Hashable]) -> np.ndarray:
        """Row code of each user, -1 for users not seen in training."""
        return np.fromiter((self.user_code.get(u, -1) for u in users), dtype=np.int64, count=len(users))


def interaction_weights(interactions: pd.DataFrame) -> np.ndarray:
    if "weight" in interactions:
        return interactions["weight"].to_numpy(dtype=np.float64)
    return np.ones(len(interactions), dtype=np.float64)


def binarize(matrix: sp.csr_matrix) -> sp.csr_matrix:
    out = matrix.copy()
    out.data = (out.data > 0).astype(np.float64)
    out.eliminate_zeros()
    return out


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the k best finite scores of each row, best first."""
    k = min(k, scores.shape[1])
    if k <= 0:
        empty = np.empty((scores.shape[0], 0))
        return empty.astype(np.int64), empty
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(values, order, axis=1)


def candidates_frame(user_ids: np.ndarray, item_ids: np.ndarray, scores: np.ndarray, source: str) -> pd.DataFrame:
    """Flatten per-user top-k arrays (users × k) into candidate rows, dropping the -inf fillers."""
    k = item_ids.shape[1]
    frame = pd.DataFrame(
        {
            "user_id": np.repeat(user_ids, k),
            "item_id": item_ids.ravel(),
            "score": scores.ravel(),
            "rank": np.tile(np.arange(1, k + 1), len(user_ids)),
            "source": source,
        }
    )
    return frame[np.isfinite(frame["score"].to_numpy())].reset_index(drop=True)


class ScoringGenerator(ABC):
    """A generator that scores every catalogue item for a known user; subclasses give `_fit` and `_score`."""

    name: str
    index: InteractionIndex

    def fit(self, interactions: pd.DataFrame, items: pd.DataFrame | None = None) -> Self:
        self.index = InteractionIndex.build(interactions, items)
        self._fit(interactions, items)
        return self

    @abstractmethod
    def _fit(self, interactions: pd.DataFrame, items: pd.DataFrame | None) -> None: ...

    @abstractmethod
    def _score(self, rows: np.ndarray) -> np.ndarray:
        """Dense scores (len(rows) × n_items) for user row codes `rows` (all >= 0)."""

    def _score_unknown(self) -> np.ndarray | None:
        """Scores for users not seen in training (None: they get no candidates)."""
        return None

    def score_block(self, codes: np.ndarray, *, exclude_seen: bool) -> np.ndarray:
        """Scores for user codes (-1: unknown user), seen items at -inf when asked."""
        out = np.full((len(codes), self.index.n_items), -np.inf)
        known = codes >= 0
        if known.any():
            out[known] = self._score(codes[known])
            if exclude_seen:
                seen = self.index.matrix[codes[known]]
                rows = np.flatnonzero(known)[np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))]
                out[rows, seen.indices] = -np.inf
        if not known.all():
            unknown = self._score_unknown()
            if unknown is not None:
                out[~known] = unknown
        return out

    def _batches(self, n: int) -> range:
        return range(0, n, max(1, _BLOCK_FLOATS // max(1, self.index.n_items)))

    def recommend(self, users: Sequence[Hashable], k: int, *, exclude_seen: bool = True) -> pd.DataFrame:
        users = list(users)
        codes = self.index.codes(users)
        user_array = np.asarray(users, dtype=object)
        frames = []
        step = self._batches(len(users)).step
        for start in self._batches(len(users)):
            block = self.score_block(codes[start : start + step], exclude_seen=exclude_seen)
            columns, values = top_k(block, k)
            frames.append(
                candidates_frame(user_array[start : start + step], self.index.item_ids[columns], values, self.name)
            )
        if not frames:
            return pd.DataFrame(columns=CANDIDATE_COLUMNS)
        return pd.concat(frames, ignore_index=True)

    def score_pairs(self, users: Sequence[Hashable], items: Sequence[Hashable]) -> np.ndarray:
        """This generator's score of each (user, item) pair; nan for an unknown user or item."""
        users_s, items_s = pd.Series(list(users), dtype=object), pd.Series(list(items), dtype=object)
        codes = self.index.codes(users_s.tolist())
        columns = pd.Index(self.index.item_ids).get_indexer(items_s)
        out = np.full(len(users_s), np.nan)
        order = np.argsort(codes, kind="stable")
        sorted_codes = codes[order]
        unique_codes, starts = np.unique(sorted_codes, return_index=True)
        bounds = np.r_[starts, len(order)]
        step = self._batches(len(unique_codes)).step
        for start in range(0, len(unique_codes), step):
            chunk = unique_codes[start : start + step]
            block = self.score_block(chunk, exclude_seen=False)
            for j, _code in enumerate(chunk):
                rows = order[bounds[start + j] : bounds[start + j + 1]]
                cols = columns[rows]
                ok = cols >= 0
                out[rows[ok]] = block[j, cols[ok]]
        out[~np.isfinite(out)] = np.nan
        return out
