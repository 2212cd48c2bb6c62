"""A weighted blend of several generators' scores, each standardised per user.

Each component's scores of a user are turned into z-scores over the items the user has not used (their
mean and spread differ by model and by user), then summed with the blend's weights. Weights are chosen
on validation data (`tune_weights`): steepest ascent from the best single component.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from models.generators.base import ScoringGenerator
from models.generators.persist import load_generator, save_generator


def standardised(scores: np.ndarray, seen: np.ndarray | None = None) -> np.ndarray:
    """Per-row z-scores over the finite, unseen entries; nan where a score is missing (-inf/nan)."""
    usable = np.isfinite(scores)
    if seen is not None:
        usable &= ~seen
    values = np.where(usable, scores, np.nan)
    count = usable.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(values, axis=1, keepdims=True) / np.maximum(count, 1)
        spread = np.sqrt(np.nansum((values - mean) ** 2, axis=1, keepdims=True) / np.maximum(count, 1))
        out = (scores - mean) / np.where(spread > 1e-12, spread, 1.0)
    return np.where(np.isfinite(scores), out, np.nan)


def combine(z_scores: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Weighted sum of z-score blocks; an entry no weighted component scores is -inf."""
    total = np.zeros_like(z_scores[0])
    scored = np.zeros(z_scores[0].shape, dtype=bool)
    for z, w in zip(z_scores, weights, strict=True):
        if w == 0:
            continue
        known = np.isfinite(z)
        total += w * np.where(known, z, 0.0)
        scored |= known
    return np.where(scored, total, -np.inf)


def tune_weights(
    count: int,
    evaluate: Callable[[list[float]], float],
    *,
    grid: Sequence[float] = (0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0),
    max_steps: int | None = None,
) -> tuple[list[float], float]:
    """Weights of `count` components maximising `evaluate(weights)` by steepest ascent: start from the
    best single component at weight 1; each step tries every other component at every `grid` weight and
    takes the best change, until none improves (at most `max_steps`, default 2 × count)."""
    singles = [evaluate([1.0 if j == i else 0.0 for j in range(count)]) for i in range(count)]
    anchor = int(np.argmax(singles))
    weights = [1.0 if j == anchor else 0.0 for j in range(count)]
    best = singles[anchor]
    for _ in range(max_steps if max_steps is not None else 2 * count):
        trials = [
            [*weights[:j], w, *weights[j + 1 :]] for j in range(count) if j != anchor for w in grid if w != weights[j]
        ]
        if not trials:
            break
        values = [evaluate(trial) for trial in trials]
        top = int(np.argmax(values))
        if values[top] <= best + 1e-9:
            break
        best, weights = values[top], trials[top]
    return weights, best


class BlendGenerator(ScoringGenerator):
    """Σ weight × per-user z-score of each component generator (all fitted on the same interactions)."""

    def __init__(
        self, components: Sequence[ScoringGenerator], weights: Sequence[float], *, name: str = "blend"
    ) -> None:
        if len(components) != len(weights) or not components:
            raise ValueError("a blend needs one weight per component, and at least one component")
        self.components, self.weights, self.name = list(components), [float(w) for w in weights], name

    def fit(
        self, interactions: pd.DataFrame, items: pd.DataFrame | None = None, *, users_frame: pd.DataFrame | None = None
    ) -> Self:
        for component in self.components:
            component.fit(interactions, items, users_frame=users_frame)
        self.index = self.components[0].index
        return self

    def _fit(self, interactions: pd.DataFrame, items: pd.DataFrame | None) -> None:
        raise NotImplementedError  # fit() fits the components

    def _score(self, rows: np.ndarray) -> np.ndarray:
        return self._score_users(rows, None)

    def component_z_scores(self, codes: np.ndarray, attributes: pd.DataFrame | None = None) -> list[np.ndarray]:
        """Each component's per-user z-scores for user codes (-1: cold), seen items excluded from the scaling."""
        seen = np.zeros((len(codes), self.index.n_items), dtype=bool)
        known = codes >= 0
        if known.any():
            rows = self.index.matrix[codes[known]]
            positions = np.flatnonzero(known)[np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))]
            seen[positions, rows.indices] = True
        return [standardised(c._score_users(codes, attributes), seen) for c in self.components]

    def _score_users(self, codes: np.ndarray, attributes: pd.DataFrame | None) -> np.ndarray:
        return combine(self.component_z_scores(codes, attributes), self.weights)

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for number, component in enumerate(self.components):
            save_generator(component, directory / f"component_{number}")
        meta: dict[str, Any] = {"class": type(self).__name__, "weights": self.weights, "name": self.name}
        (directory / "blend.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, directory: Path) -> Self:
        directory = Path(directory)
        meta = json.loads((directory / "blend.json").read_text())
        components = [load_generator(directory / f"component_{n}") for n in range(len(meta["weights"]))]
        blend = cls(components, meta["weights"], name=meta["name"])
        blend.index = components[0].index
        return blend
