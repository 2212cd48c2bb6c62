"""Implicit-feedback matrix factorisation (iALS, Hu, Koren & Volinsky 2008) through the `implicit` package."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.generators.base import ScoringGenerator, binarize


class ALSGenerator(ScoringGenerator):
    """Inner product of iALS user and item factors; confidence 1 + alpha per interaction."""

    _PARAMS = ("factors", "regularization", "alpha", "iterations", "seed", "num_threads", "name")
    _STATE = ("user_factors", "item_factors")

    def __init__(
        self,
        *,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 1.0,
        iterations: int = 15,
        seed: int = 42,
        num_threads: int = 2,
        name: str = "als",
    ) -> None:
        self.factors, self.regularization, self.alpha = factors, regularization, alpha
        self.iterations, self.seed, self.num_threads, self.name = iterations, seed, num_threads, name

    def _fit(self, interactions: pd.DataFrame, items: pd.DataFrame | None) -> None:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        # implicit runs its own threads; a BLAS thread pool inside each of them only contends.
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=self.factors,
                regularization=self.regularization,
                alpha=self.alpha,
                iterations=self.iterations,
                random_state=self.seed,
                num_threads=self.num_threads,
            )
            model.fit(binarize(self.index.matrix).astype(np.float32), show_progress=False)
        self.user_factors = np.asarray(model.user_factors, dtype=np.float64)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float64)

    def _score(self, rows: np.ndarray) -> np.ndarray:
        return self.user_factors[rows] @ self.item_factors.T
