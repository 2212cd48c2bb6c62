"""Content-based candidates: a user's profile from the attributes of what they used, cosine to every item.

Items only need attributes, not usage, so new content nobody has used yet is reachable.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.generators.base import ScoringGenerator


def attribute_matrix(
    items: pd.DataFrame, columns: Sequence[str] | None = None, *, separator: str = "|"
) -> sp.csr_matrix:
    """Item attribute vectors (rows in `items` order), L2-normalised.

    Text/categorical columns become one-hot tokens (a value may hold several, split on `separator`, or be a
    list), weighted by inverse document frequency so rare attributes say more; numeric columns are
    standardised. Missing values contribute nothing.
    """
    blocks = []
    for column in columns if columns is not None else list(items.columns):
        values = items[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            numbers = values.astype(np.float64)
            std = numbers.std()
            scaled = ((numbers - numbers.mean()) / (std if std > 0 else 1.0)).fillna(0.0)
            blocks.append(sp.csr_matrix(scaled.to_numpy()[:, None]))
            continue
        tokens = values.map(lambda v: _tokens(v, separator))
        exploded = tokens.explode().dropna()
        if exploded.empty:
            continue
        rows = pd.Index(items.index).get_indexer(exploded.index)
        codes, vocab = pd.factorize(exploded.astype(str))
        onehot = sp.csr_matrix((np.ones(len(codes)), (rows, codes)), shape=(len(items), len(vocab)))
        onehot.data[:] = 1.0
        df = np.asarray((onehot > 0).sum(axis=0)).ravel()
        blocks.append(onehot @ sp.diags(np.log((1.0 + len(items)) / (1.0 + df)) + 1.0))
    if not blocks:
        return sp.csr_matrix((len(items), 0))
    return _l2_rows(sp.hstack(blocks).tocsr())


def _tokens(value: object, separator: str) -> list[str]:
    if isinstance(value, list | tuple | set | np.ndarray):
        return [str(v) for v in value]
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return [t for t in str(value).split(separator) if t]


def _l2_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return (sp.diags(1.0 / np.maximum(norms, 1e-12)) @ matrix).tocsr()


class ContentGenerator(ScoringGenerator):
    """Cosine between a user's attribute profile (sum of their items' vectors) and each item's vector.

    Needs the item attribute table (indexed by item id; `columns` picks the attribute columns, default all).
    """

    def __init__(self, *, columns: Sequence[str] | None = None, separator: str = "|", name: str = "content") -> None:
        self.columns, self.separator, self.name = columns, separator, name

    def _fit(self, interactions: pd.DataFrame, items: pd.DataFrame | None) -> None:
        if items is None:
            raise ValueError("the content-based generator needs an item attribute table")
        ordered = items.reindex(self.index.item_ids)  # catalogue order; used-but-undescribed items get nothing
        self.item_vectors = attribute_matrix(ordered, self.columns, separator=self.separator)
        self.profiles = _l2_rows((self.index.matrix @ self.item_vectors).tocsr())

    def _score(self, rows: np.ndarray) -> np.ndarray:
        return (self.profiles[rows] @ self.item_vectors.T).toarray()
