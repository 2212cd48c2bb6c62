"""Low-rank item factors from the top eigenvectors of the degree-normalised item Gram (EigenRec-style).

EigenRec (Nikolakopoulos et al., 2019) shows that PureSVD's item factors work better when the item-item
matrix is first scaled by item degree: with D = diag(G) ** normalisation, the top `factors` eigenvectors V
of D^-½ G D^-½ give scores X D^-½ V Vᵀ D^½. The low rank sees the broad tastes a full-rank model such as
EASE spreads thin, so the two blend well. The Gram may be the sequence-aware one (`window`, see
`item_item.item_gram`); `scipy.sparse.linalg.eigsh` keeps it sparse for large catalogues.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh

from models.generators.base import ScoringGenerator, binarize
from models.generators.item_item import item_gram


class SpectralGenerator(ScoringGenerator):
    """Scores X D^-½ V Vᵀ D^½ from the top eigenvectors V of the degree-normalised (sequence) Gram."""

    _PARAMS = ("factors", "normalisation", "window", "floor", "name")
    _STATE = ("item_factors", "item_scale")

    def __init__(
        self,
        *,
        factors: int = 32,
        normalisation: float = 0.5,
        window: float | None = None,
        floor: float = 0.2,
        name: str = "spectral",
    ) -> None:
        self.factors, self.normalisation, self.window, self.floor, self.name = (
            factors,
            normalisation,
            window,
            floor,
            name,
        )

    def _fit(self, interactions: pd.DataFrame, items: pd.DataFrame | None) -> None:
        self.x = binarize(self.index.matrix)
        gram = item_gram(interactions, self.index, window=self.window, floor=self.floor)
        degree = np.maximum(gram.diagonal(), 1e-12) ** self.normalisation
        self.item_scale = np.sqrt(degree)
        inverse = sp.diags(1.0 / self.item_scale)
        scaled = (inverse @ gram @ inverse).tocsr()
        n = scaled.shape[0]
        k = max(1, min(self.factors, n - 1))
        if n <= 2 * k + 1:  # too small for the Lanczos solver: a dense decomposition
            _, vectors = np.linalg.eigh(scaled.toarray())
            vectors = vectors[:, -k:]
        else:
            _, vectors = eigsh(scaled, k=k, which="LA", v0=np.ones(n) / np.sqrt(n))
        self.item_factors = np.asarray(vectors, dtype=np.float64)

    def _restore(self) -> None:
        self.x = binarize(self.index.matrix)

    def _score(self, rows: np.ndarray) -> np.ndarray:
        user = np.asarray((self.x[rows] @ sp.diags(1.0 / self.item_scale)) @ self.item_factors)
        return (user @ self.item_factors.T) * self.item_scale[None, :]
