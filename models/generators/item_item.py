"""Item-item collaborative filtering: EASE (dense closed form, or sparse top-k neighbours) and RP3beta.

Both EASE and the spectral generator start from an item × item Gram matrix. The plain one counts the users
two items share (XᵀX). The sequence-aware one (`item_gram(..., window=L)`) counts a shared user fully only
when the two items are near each other in that user's time-ordered history: a pair `d` positions apart
weighs `floor + (1 - floor) · exp(-d / L)`, so items used in the same stretch of a history (one session,
one programme, one season) are tied more strongly than items a user happens to have both used years
apart. Each weight matrix exp(-|i - j| / L) is positive definite, so the Gram stays a valid one and EASE's
closed form applies unchanged; with `floor = 1` it is XᵀX again.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse as sp

from models.generators.base import InteractionIndex, ScoringGenerator, binarize

# Pairs further apart than this many windows weigh less than exp(-5) ≈ 0.7 % of a neighbour: left out.
_REACH = 5.0
# Pairs gathered per chunk while building the sequence Gram (bounds the memory of the pair buffers).
_PAIRS_PER_CHUNK = 4_000_000
# Catalogues up to this many item pairs (n²) sum the pairs into a dense array (a few hundred MB at most).
_DENSE_GRAM_CELLS = 16_000_000


def sequence_positions(interactions: pd.DataFrame, index: InteractionIndex) -> tuple[np.ndarray, np.ndarray]:
    """(user codes, item codes) of each distinct (user, item), ordered by user then time.

    A user's repeated item keeps its first time; ties in time are ordered by a hash of the item id, so the
    order never depends on the file's row order.
    """
    frame = pd.DataFrame(
        {
            "u": index.codes(interactions["user_id"].tolist()),
            "i": pd.Index(index.item_ids).get_indexer(interactions["item_id"]),
            "t": interactions["timestamp"].to_numpy(dtype=np.float64),
            "h": pd.util.hash_array(interactions["item_id"].astype(str).to_numpy()),
        }
    )
    frame = frame.sort_values(["u", "t", "h"], kind="stable").drop_duplicates(["u", "i"])
    return frame["u"].to_numpy(), frame["i"].to_numpy()


def item_gram(
    interactions: pd.DataFrame, index: InteractionIndex, *, window: float | None = None, floor: float = 0.2
) -> sp.csr_matrix:
    """Item × item Gram of the binarised interactions: XᵀX, or its sequence-aware form (see the module)."""
    x = binarize(index.matrix)
    plain = (x.T @ x).tocsr()
    if window is None or floor >= 1.0 or "timestamp" not in interactions:
        return plain
    users, items = sequence_positions(interactions, index)
    n = index.n_items
    offsets = np.arange(1, max(1, int(np.ceil(_REACH * window))) + 1)
    chunk = max(1, _PAIRS_PER_CHUNK // max(1, len(items)))
    dense = n * n <= _DENSE_GRAM_CELLS
    near: np.ndarray | sp.csr_matrix = np.zeros(n * n) if dense else sp.csr_matrix((n, n))
    for start in range(0, len(offsets), chunk):
        keys, vals = [], []
        for offset in offsets[start : start + chunk]:
            same = users[offset:] == users[:-offset]
            keys.append(items[:-offset][same].astype(np.int64) * n + items[offset:][same])
            vals.append(np.full(int(same.sum()), np.exp(-offset / window)))
        key, val = np.concatenate(keys), np.concatenate(vals)
        if dense:
            near += np.bincount(key, weights=val, minlength=n * n)
        else:
            near = near + sp.csr_matrix((val, (key // n, key % n)), shape=(n, n))
    one_way = sp.csr_matrix(near.reshape(n, n)) if isinstance(near, np.ndarray) else near
    near = one_way + one_way.T  # each pair was gathered in its history order only
    near = near + sp.diags(plain.diagonal())  # an item is at distance 0 from itself
    return (floor * plain + (1.0 - floor) * near).tocsr()


def keep_top_k_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """The k largest entries of each row of a sparse matrix (the rest dropped)."""
    matrix = matrix.tocsr()
    rows, cols, vals = [], [], []
    for r in range(matrix.shape[0]):
        start, end = matrix.indptr[r], matrix.indptr[r + 1]
        data, idx = matrix.data[start:end], matrix.indices[start:end]
        if len(data) > k:
            keep = np.argpartition(-data, k - 1)[:k]
            data, idx = data[keep], idx[keep]
        rows.append(np.full(len(idx), r))
        cols.append(idx)
        vals.append(data)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=matrix.shape, dtype=np.float64
    )


class EASEGenerator(ScoringGenerator):
    """EASE (Steck 2019): item-item weights B minimising ||X - XB||² + λ||B||² with diag(B) = 0.

    `mode="dense"` is the closed form B = I - P / diag(P), P = (XᵀX + λI)⁻¹: an items × items matrix, so
    only for catalogues up to `max_dense_items` (`mode="auto"`). Above it the sparse variant solves, for
    each item j, the same ridge regression of column j restricted to its `neighbours` items with the
    highest co-occurrence cosine: one small k × k system per item, B stored sparse.

    With `window` (positions in a user's time-ordered history), XᵀX is replaced by the sequence-aware Gram
    (`item_gram`); scores are still X B over the user's whole history.
    """

    _PARAMS = ("l2", "mode", "max_dense_items", "neighbours", "window", "floor", "name")
    _STATE = ("weights",)

    def __init__(
        self,
        *,
        l2: float = 500.0,
        mode: Literal["auto", "dense", "sparse"] = "auto",
        max_dense_items: int = 20_000,
        neighbours: int = 200,
        window: float | None = None,
        floor: float = 0.2,
        name: str = "ease",
    ) -> None:
        self.l2, self.mode, self.max_dense_items, self.neighbours = l2, mode, max_dense_items, neighbours
        self.window, self.floor, self.name = window, floor, name

    def _fit(self, interactions: pd.DataFrame, items: pd.DataFrame | None) -> None:
        self.x = binarize(self.index.matrix)
        gram = item_gram(interactions, self.index, window=self.window, floor=self.floor)
        dense = self.mode == "dense" or (self.mode == "auto" and self.index.n_items <= self.max_dense_items)
        self.weights: np.ndarray | sp.csr_matrix = self._dense(gram) if dense else self._sparse(gram)

    def _restore(self) -> None:
        self.x = binarize(self.index.matrix)

    def _dense(self, sparse_gram: sp.csr_matrix) -> np.ndarray:
        gram = sparse_gram.toarray()
        gram[np.diag_indices_from(gram)] += self.l2
        inverse = np.linalg.inv(gram)
        weights = -inverse / np.diag(inverse)[None, :]
        weights[np.diag_indices_from(weights)] = 0.0
        return weights

    def _sparse(self, gram: sp.csr_matrix) -> sp.csr_matrix:
        diag = gram.diagonal()
        rows, cols, vals = [], [], []
        for j in range(gram.shape[0]):
            start, end = gram.indptr[j], gram.indptr[j + 1]
            idx, data = gram.indices[start:end], gram.data[start:end]
            other = idx != j
            idx, data = idx[other], data[other]
            if len(idx) == 0:
                continue
            if len(idx) > self.neighbours:
                cosine = data / np.sqrt(diag[idx] * diag[j])
                keep = np.argpartition(-cosine, self.neighbours - 1)[: self.neighbours]
                idx, data = idx[keep], data[keep]
            block = _submatrix(gram, idx)
            block[np.diag_indices_from(block)] += self.l2
            rows.append(idx)
            cols.append(np.full(len(idx), j))
            vals.append(scipy.linalg.solve(block, data, assume_a="pos", check_finite=False))
        n = gram.shape[0]
        if not rows:
            return sp.csr_matrix((n, n))
        return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))

    def _score(self, rows: np.ndarray) -> np.ndarray:
        scores = self.x[rows] @ self.weights
        return scores.toarray() if sp.issparse(scores) else np.asarray(scores)

    def item_similarity(self, code: int) -> np.ndarray:
        """The EASE weights of the item: how much doing it predicts doing each other item."""
        row = self.weights[code]
        return row.toarray().ravel() if sp.issparse(row) else np.asarray(row, dtype=np.float64).ravel()


class RP3betaGenerator(ScoringGenerator):
    """RP3beta (Paudel et al. 2017): 3-step random-walk item-item weights, divided by popularity ** beta.

    W = (P_iu^α P_ui^α) / pop_j^β with rows keeping their `neighbours` largest entries; score = X W.
    """

    _PARAMS = ("alpha", "beta", "neighbours", "name")
    _STATE = ("weights",)

    def __init__(self, *, alpha: float = 1.0, beta: float = 0.5, neighbours: int = 200, name: str = "rp3beta") -> None:
        self.alpha, self.beta, self.neighbours, self.name = alpha, beta, neighbours, name

    def _fit(self, interactions: pd.DataFrame, items: pd.DataFrame | None) -> None:
        self.x = binarize(self.index.matrix)
        user_item = _row_normalised(self.x).power(self.alpha)
        item_user = _row_normalised(self.x.T.tocsr()).power(self.alpha)
        weights = (item_user @ user_item).tocsr()
        popularity = np.asarray(self.x.sum(axis=0)).ravel()
        weights = weights @ sp.diags(np.power(np.maximum(popularity, 1.0), -self.beta))
        weights = weights.tocsr()
        weights.setdiag(0.0)
        weights.eliminate_zeros()
        self.weights = keep_top_k_per_row(weights, self.neighbours)

    def _restore(self) -> None:
        self.x = binarize(self.index.matrix)

    def _score(self, rows: np.ndarray) -> np.ndarray:
        return (self.x[rows] @ self.weights).toarray()


def _submatrix(matrix: sp.csr_matrix, idx: np.ndarray) -> np.ndarray:
    """matrix[idx][:, idx] as a dense array, without scipy's slow column fancy-indexing."""
    rows = matrix[idx]
    position = np.full(matrix.shape[1], -1)
    position[idx] = np.arange(len(idx))
    columns = position[rows.indices]
    keep = columns >= 0
    row_of = np.repeat(np.arange(len(idx)), np.diff(rows.indptr))
    block = np.zeros((len(idx), len(idx)))
    block[row_of[keep], columns[keep]] = rows.data[keep]
    return block


def _row_normalised(matrix: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    return (sp.diags(1.0 / np.maximum(sums, 1e-12)) @ matrix).tocsr()
