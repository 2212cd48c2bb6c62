"""The packaged recommender: a native LightGBM ranking booster as an MLflow pyfunc model.

The booster is stored as LightGBM's own text model file and the feature layout
(ordered names, categorical levels) as JSON; neither is pickled, so a model can
be loaded by any process with lightgbm, pandas and this module. This module
imports no other package of the project: it is shipped with the model
(`code_paths`) and loaded by serving.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

BOOSTER_ARTIFACT = "booster"
SPEC_ARTIFACT = "feature_spec"
BOOSTER_FILE = "booster.txt"
SPEC_FILE = "feature_spec.json"


@dataclass(frozen=True)
class FeatureSpec:
    """Ordered model inputs; categorical columns map their levels to integer codes (unknown -> missing)."""

    names: tuple[str, ...]
    categorical: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def fit(cls, frame: pd.DataFrame, *, names: list[str], categorical: list[str]) -> FeatureSpec:
        """Freeze the levels seen in `frame` (sorted, so codes do not depend on row order)."""
        unknown = [c for c in categorical if c not in names]
        if unknown:
            raise ValueError(f"categorical columns not among the features: {unknown}")
        levels = {col: tuple(sorted({str(v) for v in frame[col].dropna().unique()})) for col in categorical}
        return cls(names=tuple(names), categorical=levels)

    def categorical_indices(self) -> list[int]:
        return [i for i, name in enumerate(self.names) if name in self.categorical]

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """The float matrix LightGBM reads, columns in `names` order; missing values stay NaN."""
        missing = [c for c in self.names if c not in frame.columns]
        if missing:
            raise KeyError(f"model input lacks feature columns: {missing}")
        out = np.empty((len(frame), len(self.names)), dtype=np.float64)
        numeric = [j for j, name in enumerate(self.names) if name not in self.categorical]
        block = frame[[self.names[j] for j in numeric]]
        if all(pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in block.dtypes):
            # Serving's frames are one float block: a single copy instead of a conversion per column.
            out[:, numeric] = block.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            for j in numeric:
                column = frame[self.names[j]]
                out[:, j] = pd.to_numeric(column, errors="coerce").astype(np.float64).to_numpy()
        for j, name in enumerate(self.names):
            if name in self.categorical:
                codes = pd.Categorical(frame[name].astype("string"), categories=list(self.categorical[name])).codes
                out[:, j] = np.where(codes < 0, np.nan, codes)
        return out

    def to_json(self) -> str:
        return json.dumps({"names": list(self.names), "categorical": {k: list(v) for k, v in self.categorical.items()}})

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        raw = json.loads(text)
        return cls(names=tuple(raw["names"]), categorical={k: tuple(v) for k, v in raw["categorical"].items()})


class Recommender(PythonModel):
    """Scores candidate rows (one per user-item pair) with a LightGBM LambdaRank booster."""

    def __init__(self, booster: lgb.Booster | None = None, spec: FeatureSpec | None = None, *, threads: int = 1):
        # One thread by default: serving scores a few hundred rows per request, where
        # thread start-up costs more than it saves.
        self.threads = threads
        self._booster = booster
        self._spec = spec

    # The booster lives in artifacts, never in the pickle MLflow writes for the python model.
    def __getstate__(self) -> dict[str, Any]:
        return {"threads": self.threads, "_booster": None, "_spec": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def save_artifacts(self, directory: str | Path) -> dict[str, str]:
        """Write the native booster and the feature spec; returns the `artifacts` mapping for log_model."""
        booster, spec = self._loaded()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        booster.save_model(str(directory / BOOSTER_FILE))
        (directory / SPEC_FILE).write_text(spec.to_json())
        return {BOOSTER_ARTIFACT: str(directory / BOOSTER_FILE), SPEC_ARTIFACT: str(directory / SPEC_FILE)}

    def load_context(self, context: Any) -> None:
        self._booster = lgb.Booster(model_file=context.artifacts[BOOSTER_ARTIFACT])
        self._spec = FeatureSpec.from_json(Path(context.artifacts[SPEC_ARTIFACT]).read_text())

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> np.ndarray:
        return self.score(model_input)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self._loaded()[1].names

    @property
    def spec(self) -> FeatureSpec:
        return self._loaded()[1]

    @property
    def booster(self) -> lgb.Booster:
        return self._loaded()[0]

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """One relevance score per row (higher ranks first)."""
        booster, spec = self._loaded()
        if len(frame) == 0:
            return np.empty(0, dtype=np.float64)
        return np.asarray(booster.predict(spec.encode(frame), num_threads=self.threads), dtype=np.float64)

    def explain(self, frame: pd.DataFrame, *, relative: bool = False) -> list[str]:
        """Per row, the feature that raised the score most ("" when no feature raised it).

        With `relative`, contributions are measured against the rows' mean: the feature
        that sets a row apart from the others (a feature that lifts every item of a
        slate alike, such as owning the equipment, explains none of them).
        """
        booster, spec = self._loaded()
        if len(frame) == 0:
            return []
        contrib = np.asarray(booster.predict(spec.encode(frame), pred_contrib=True, num_threads=self.threads))
        contrib = contrib[:, : len(spec.names)]  # the last column is the bias term
        if relative and len(frame) > 1:
            contrib = contrib - contrib.mean(axis=0)
        best = contrib.argmax(axis=1)
        top = contrib[np.arange(len(best)), best]
        return [spec.names[j] if v > 0 else "" for j, v in zip(best, top, strict=True)]

    def _loaded(self) -> tuple[lgb.Booster, FeatureSpec]:
        if self._booster is None or self._spec is None:
            raise RuntimeError("the recommender has no booster: build it with one or load it through MLflow")
        return self._booster, self._spec
