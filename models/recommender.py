"""The packaged recommender: candidate generators, a ranker and the slate policy as ONE MLflow pyfunc model.

What serving (and batch precompute) needs, without knowing which algorithms are inside:

- `candidates(users, users_frame)`: every source's top items for each user, merged, one row per
  (user, item) with each source's score, rank and score relative to the user's best from that source
  (the ranker's features), how many sources retrieved the item, and the user's own history with it;
- `score(frame)`: the ranker's relevance of candidate rows that also carry the online features of the
  feature service named in the configuration (`feature_service`, `online_features`);
- `explain(frame)`: per row, the feature that raised the score most;
- `slate(item_ids, scores, k)`: the slate policy (top-k with at most `max_per_category` of a category).

Cold users (no history in the generators) are described by a users frame built from the online features
named in `user_attributes` (`users_frame(rows)` turns stored values into the generators' columns).

Persistence without pickle: the configuration and the item table as JSON, each generator through
`models.generators.persist` (numpy, scipy and JSON files; torch state dicts), each ranker through its own
`save`/`load` (LightGBM's text model file, JSON). MLflow loads the model from code
(`models/pyfunc_entry.py`) and hands the saved folder over as the `package` artifact.

This module imports no other package of the project: it travels with the model (`code_paths`).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self

import lightgbm as lgb
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

PACKAGE_ARTIFACT = "package"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
ITEMS_FILE = "items.json"
RANKER_FILE = "ranker.json"
BOOSTER_FILE = "booster.txt"
SPEC_FILE = "feature_spec.json"
N_SOURCES = "n_sources"
HISTORY = "user_item_history"  # summed interaction weight of the (user, item) pair in the generators' data
# Users scored per dense block (users × catalogue floats stay bounded while training features are built).
_BLOCK_FLOATS = 1 << 22


def source_columns(source: str) -> tuple[str, str, str]:
    """The candidate columns of one source: its raw score, its rank (1 = best) and score / the user's best."""
    return f"{source}_score", f"{source}_rank", f"{source}_relative"


def source_features(sources: Sequence[str]) -> list[str]:
    """The ranker features the sources give. Raw scores are left out: their scale follows the data's
    density, so it would not carry from the generators the ranker was trained beside to the refitted ones."""
    out = []
    for source in sources:
        _, rank, relative = source_columns(source)
        out += [rank, relative]
    return [*out, N_SOURCES, HISTORY]


# --- rankers ------------------------------------------------------------------------------------------------


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
        if {t.kind for t in set(block.dtypes)} <= {"f", "i", "u"}:
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


class Ranker(Protocol):
    """What the package asks of a ranker: scores of candidate rows, and a way to save itself."""

    kind: str

    def score(self, frame: pd.DataFrame) -> np.ndarray: ...

    def save(self, directory: Path) -> None: ...


class LightGBMRanker:
    """Scores candidate rows (one per user-item pair) with a LightGBM LambdaRank booster."""

    kind = "lightgbm"

    def __init__(self, booster: lgb.Booster, spec: FeatureSpec, *, threads: int = 1) -> None:
        # One thread by default: serving scores a few hundred rows per request, where
        # thread start-up costs more than it saves.
        self.booster, self.spec, self.threads = booster, spec, threads

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.spec.names

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """One relevance score per row (higher ranks first)."""
        if len(frame) == 0:
            return np.empty(0, dtype=np.float64)
        return np.asarray(self.booster.predict(self.spec.encode(frame), num_threads=self.threads), dtype=np.float64)

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows × features: each feature's share of each row's score (LightGBM's SHAP values, bias left out)."""
        contrib = np.asarray(self.booster.predict(self.spec.encode(frame), pred_contrib=True, num_threads=self.threads))
        return contrib[:, : len(self.spec.names)]

    def explain(self, frame: pd.DataFrame, *, relative: bool = False) -> list[str]:
        """Per row, the feature that raised the score most ("" when no feature raised it).

        With `relative`, contributions are measured against the rows' mean: the feature
        that sets a row apart from the others (a feature that lifts every item of a
        slate alike, such as owning the equipment, explains none of them).
        """
        if len(frame) == 0:
            return []
        return top_feature(self.contributions(frame), self.spec.names, relative=relative)

    def importance(self) -> dict[str, float]:
        """Total gain of each feature."""
        gains = self.booster.feature_importance("gain").tolist()
        return dict(zip(self.booster.feature_name(), (float(g) for g in gains), strict=True))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(directory / BOOSTER_FILE))
        (directory / SPEC_FILE).write_text(self.spec.to_json())

    @classmethod
    def load(cls, directory: Path) -> Self:
        booster = lgb.Booster(model_file=str(directory / BOOSTER_FILE))
        return cls(booster, FeatureSpec.from_json((directory / SPEC_FILE).read_text()))


class BlendRanker:
    """A weighted sum of member rankers' scores, each divided by its spread on the validation rows."""

    kind = "blend"

    def __init__(self, members: Mapping[str, Any], *, weights: Mapping[str, float], scales: Mapping[str, float]):
        self.members = dict(members)
        self.weights = {k: float(v) for k, v in weights.items()}
        self.scales = {k: float(v) if v > 0 else 1.0 for k, v in scales.items()}

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        total = np.zeros(len(frame))
        for name, ranker in self.members.items():
            if self.weights.get(name, 0.0):
                total += self.weights[name] * np.asarray(ranker.score(frame), dtype=np.float64) / self.scales[name]
        return total

    @property
    def feature_names(self) -> tuple[str, ...]:
        for ranker in self.members.values():
            return tuple(ranker.feature_names)
        return ()

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """The members' contributions, weighted and scaled as their scores are (the blend is linear in them)."""
        names = self.feature_names
        total = np.zeros((len(frame), len(names)))
        for name, ranker in self.members.items():
            if self.weights.get(name, 0.0) and hasattr(ranker, "contributions"):
                position = pd.Index(ranker.feature_names).get_indexer(names)
                part = np.asarray(ranker.contributions(frame))
                total[:, position >= 0] += self.weights[name] * part[:, position[position >= 0]] / self.scales[name]
        return total

    def explain(self, frame: pd.DataFrame, *, relative: bool = False) -> list[str]:
        """Per row, the feature that raised the blended score most."""
        if len(frame) == 0:
            return []
        return top_feature(self.contributions(frame), self.feature_names, relative=relative)

    def importance(self) -> dict[str, float]:
        for ranker in self.members.values():
            if hasattr(ranker, "importance"):
                return dict(ranker.importance())
        return {}

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, ranker in self.members.items():
            save_ranker(ranker, directory / name)
        blend = {"members": list(self.members), "weights": self.weights, "scales": self.scales}
        (directory / "blend.json").write_text(json.dumps(blend))

    @classmethod
    def load(cls, directory: Path) -> Self:
        raw = json.loads((directory / "blend.json").read_text())
        members = {name: load_ranker(directory / name) for name in raw["members"]}
        return cls(members, weights=raw["weights"], scales=raw["scales"])


def top_feature(contrib: np.ndarray, names: Sequence[str], *, relative: bool) -> list[str]:
    """Per row, the name of the largest positive contribution ("" when none is positive); with `relative`,
    measured against the rows' mean contribution (what sets a row apart from the others)."""
    if relative and len(contrib) > 1:
        contrib = contrib - contrib.mean(axis=0)
    best = contrib.argmax(axis=1)
    top = contrib[np.arange(len(best)), best]
    return [names[j] if v > 0 else "" for j, v in zip(best, top, strict=True)]


# Ranker kinds a package may hold: module path and class, imported on first use (torch only when needed).
RANKERS: dict[str, tuple[str, str]] = {
    "lightgbm": ("models.recommender", "LightGBMRanker"),
    "blend": ("models.recommender", "BlendRanker"),
    "torch": ("models.torch_ranker", "TorchRanker"),
}


def save_ranker(ranker: Any, directory: Path) -> None:
    """Write a ranker of a known kind under `directory`, with `ranker.json` naming its kind."""
    kind = getattr(ranker, "kind", None) or ("torch" if type(ranker).__name__ == "TorchRanker" else None)
    if kind not in RANKERS:
        raise ValueError(f"unknown ranker kind {kind!r} ({', '.join(RANKERS)})")
    directory.mkdir(parents=True, exist_ok=True)
    ranker.save(directory)
    (directory / RANKER_FILE).write_text(json.dumps({"kind": kind, "format": FORMAT_VERSION}))


def load_ranker(directory: Path) -> Any:
    kind = json.loads((directory / RANKER_FILE).read_text())["kind"]
    if kind not in RANKERS:
        raise ValueError(f"{directory}: unknown ranker kind {kind!r}")
    module, name = RANKERS[kind]
    return getattr(importlib.import_module(module), name).load(directory)


# --- slate policy and configuration -------------------------------------------------------------------------


@dataclass(frozen=True)
class SlatePolicy:
    """Top-k by score, at most `max_per_category` items of one category while others are left.

    The cap reorders, it never shortens: when too few categories are left, the best capped items
    fill the slate.
    """

    k: int = 10
    max_per_category: int | None = None

    def select(self, categories: Sequence[Any], scores: np.ndarray, k: int | None = None) -> np.ndarray:
        """Positions of the chosen rows, best first; rows scored -inf or nan are never chosen."""
        k = self.k if k is None else k
        scores = np.asarray(scores, dtype=np.float64)
        order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")
        order = order[np.isfinite(scores[order])]
        if self.max_per_category is None or len(order) <= 1:
            return order[:k]
        chosen: list[int] = []
        overflow: list[int] = []
        taken: dict[Any, int] = {}
        for position in order:
            category = categories[position]
            if taken.get(category, 0) < self.max_per_category:
                taken[category] = taken.get(category, 0) + 1
                chosen.append(position)
                if len(chosen) == k:
                    break
            else:
                overflow.append(position)
        chosen += overflow[: k - len(chosen)]
        return np.asarray(chosen, dtype=np.int64)


@dataclass(frozen=True)
class RecommenderConfig:
    """Everything about the package that is plain configuration (stored as JSON beside the model)."""

    feature_service: str  # the feature service whose features `online_features` are (training and serving)
    online_features: tuple[str, ...]
    sources: tuple[str, ...]  # generator names, in order
    per_source: dict[str, int]  # candidates each source contributes per user
    slate: SlatePolicy = SlatePolicy()
    exclude_seen: bool = False  # fitness users repeat sessions: what they did stays recommendable
    # users-frame column -> online feature ("view:feature") it is read from, for cold users.
    user_attributes: dict[str, str] = field(default_factory=dict)
    multi_valued: dict[str, str] = field(default_factory=dict)  # users-frame column -> separator of its stored value
    trained_until: str | None = None  # the newest interaction the generators saw (ISO time)
    notes: dict[str, Any] = field(default_factory=dict)  # what training decided (ranker choice, ...), for reading

    @property
    def features(self) -> list[str]:
        """The ranker's input columns: the online features, then what the sources give."""
        return [*self.online_features, *source_features(self.sources)]

    def to_json(self) -> str:
        raw = asdict(self)
        raw["format"] = FORMAT_VERSION
        return json.dumps(raw, indent=1, default=str)

    @classmethod
    def from_json(cls, text: str) -> RecommenderConfig:
        raw = json.loads(text)
        if raw.pop("format", None) != FORMAT_VERSION:
            raise ValueError("unknown recommender configuration format")
        raw["slate"] = SlatePolicy(**raw["slate"])
        raw["online_features"] = tuple(raw["online_features"])
        raw["sources"] = tuple(raw["sources"])
        return cls(**raw)


# --- the package --------------------------------------------------------------------------------------------


def users_frame(rows: pd.DataFrame, attributes: Mapping[str, str], multi_valued: Mapping[str, str]) -> pd.DataFrame:
    """Stored user attribute values (columns named like the features of `attributes`' references, indexed by
    user_id) as a generators' users frame: columns renamed to the keys of `attributes`, multi-valued ones
    (`multi_valued`: column -> separator) split into sorted lists, blank values missing. Training and serving
    both build cold users' descriptions through this one function."""
    out: dict[str, list[Any]] = {}
    for column, ref in attributes.items():  # plain lists: a request describes one user (pandas: ~2 ms)
        feature = ref.split(":", 1)[-1]
        values = rows[feature].tolist() if feature in rows else [None] * len(rows)
        values = [None if _blank(v) else v for v in values]
        separator = multi_valued.get(column)
        if separator:
            values = [_split(v, separator) for v in values]
        out[column] = values
    return pd.DataFrame(out, index=rows.index, dtype=object)


def _blank(value: Any) -> bool:
    if isinstance(value, list | tuple | np.ndarray):
        return False
    return value is None or bool(pd.isna(value)) or str(value) == ""


def _split(value: Any, separator: str) -> Any:
    return sorted(t for t in value.split(separator) if t) if isinstance(value, str) else value


class PackagedRecommender(PythonModel):
    """Generators + ranker + configuration; see the module docstring. Build it in memory from fitted parts,
    or load it with MLflow (`load_context`) or from a folder (`load`)."""

    def __init__(
        self,
        *,
        generators: Mapping[str, Any] | None = None,
        ranker: Any = None,
        config: RecommenderConfig | None = None,
        items: pd.Series | None = None,
    ) -> None:
        """`items`: the catalogue's item ids (index) and their categories (values), for the slate policy."""
        self._set(generators or {}, ranker, config, items)

    def _set(
        self, generators: Mapping[str, Any], ranker: Any, config: RecommenderConfig | None, items: pd.Series | None
    ) -> None:
        self.generators = dict(generators)
        self.ranker = ranker
        self._config = config
        ids: list[Hashable] = [] if items is None else list(items.index)
        for generator in self.generators.values():  # items only the generators know still rank
            known = set(ids)
            ids += [i for i in generator.index.item_ids if i not in known]
        self.item_ids = np.asarray(ids, dtype=object)
        categories = {} if items is None else items.to_dict()
        self.categories = np.asarray([categories.get(i) for i in ids], dtype=object)
        self._position = pd.Index(self.item_ids)
        # Each generator's columns in package item order (-1: the generator does not know the item).
        self._columns = {
            name: pd.Index(g.index.item_ids).get_indexer(self.item_ids) for name, g in self.generators.items()
        }
        self._category_of = dict(zip(ids, self.categories.tolist(), strict=True))

    # Nothing fitted lives in the pickle MLflow may write for the python model.
    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._set({}, None, None, None)

    @property
    def config(self) -> RecommenderConfig:
        if self._config is None:
            raise RuntimeError("the recommender is empty: build it from fitted parts or load it through MLflow")
        return self._config

    @property
    def feature_service(self) -> str:
        return self.config.feature_service

    @property
    def online_features(self) -> tuple[str, ...]:
        """The feature service's features the ranker reads from the caller's frame."""
        return self.config.online_features

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(self.config.features)

    @property
    def user_attribute_refs(self) -> dict[str, str]:
        """users-frame column -> online feature reference, for describing cold users."""
        return dict(self.config.user_attributes)

    # -- users ---------------------------------------------------------------------------------------------

    def knows_user(self, user_id: Hashable) -> bool:
        """Whether any generator has the user's history (else a users frame describes them)."""
        return any(user_id in g.index.user_code for g in self.generators.values())

    def users_frame(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Stored attribute values as the generators' users frame (see `users_frame`)."""
        return users_frame(rows, self.config.user_attributes, self.config.multi_valued)

    # -- candidates and their source features ---------------------------------------------------------------

    def _blocks(self, users: list[Hashable], attributes: pd.DataFrame | None) -> dict[str, np.ndarray]:
        """Per source, scores of these users for every package item (-inf: not retrievable)."""
        out = {}
        n = len(self.item_ids)
        for name in self.config.sources:
            generator = self.generators[name]
            codes = generator.index.codes(users)
            block = generator.score_block(codes, exclude_seen=self.config.exclude_seen, attributes=attributes)
            columns = self._columns[name]
            known = columns >= 0
            full = np.full((len(users), n), -np.inf)
            full[:, known] = block[:, columns[known]]
            out[name] = full
        return out

    def _history(self, users: list[Hashable]) -> np.ndarray:
        """Summed interaction weight of each user with each package item, in the generators' data."""
        out = np.zeros((len(users), len(self.item_ids)))
        for name in self.config.sources:  # every generator saw the same interactions: the first one says
            index = self.generators[name].index
            codes = index.codes(users)
            known = np.flatnonzero(codes >= 0)
            if len(known):
                rows = index.matrix[codes[known]].toarray()
                columns = self._columns[name]
                ok = columns >= 0
                out[np.ix_(known, np.flatnonzero(ok))] = rows[:, columns[ok]]
            break
        return out

    def _source_arrays(
        self, users: list[Hashable], attributes: pd.DataFrame | None
    ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], np.ndarray, np.ndarray]:
        """Per source (score, rank, relative) users × items, the number of sources retrieving each item,
        and the history weights."""
        arrays = {}
        retrieved = np.zeros((len(users), len(self.item_ids)), dtype=np.int64)
        for name, scores in self._blocks(users, attributes).items():
            finite = np.isfinite(scores)
            order = np.argsort(-np.where(finite, scores, -np.inf), axis=1, kind="stable")
            rank = np.empty_like(scores)
            np.put_along_axis(rank, order, np.arange(1, scores.shape[1] + 1, dtype=np.float64)[None, :], axis=1)
            rank[~finite] = np.nan
            best = np.where(finite, scores, -np.inf).max(axis=1, keepdims=True) if scores.shape[1] else scores
            with np.errstate(invalid="ignore", divide="ignore"):
                relative = np.where(np.abs(best) > 1e-12, scores / best, np.nan)
            relative[~finite] = np.nan
            score = np.where(finite, scores, np.nan)
            retrieved += (rank <= self.config.per_source.get(name, 0)).astype(np.int64)
            arrays[name] = (score, rank, relative)
        return arrays, retrieved, self._history(users)

    def _user_batches(self, n_users: int) -> range:
        step = max(1, _BLOCK_FLOATS // max(1, len(self.item_ids) * max(1, len(self.config.sources))))
        return range(0, n_users, step)

    def _attributes(self, users: list[Hashable], users_frame: pd.DataFrame | None) -> pd.DataFrame | None:
        if users_frame is None:
            return None
        return users_frame.reindex(pd.Index(users, dtype=object))

    def candidates(self, users: Sequence[Hashable], users_frame: pd.DataFrame | None = None) -> pd.DataFrame:
        """Each user's candidates: the union of every source's top `per_source` items, one row per
        (user, item) with `<source>_score`, `<source>_rank`, `<source>_relative` of every source (nan where
        a source cannot score the pair), `n_sources` and `user_item_history`. Rows of a user are contiguous,
        best-ranked first (by the best rank any source gave)."""
        users = list(dict.fromkeys(users))
        frames = []
        step = self._user_batches(len(users)).step
        for start in self._user_batches(len(users)):
            batch = users[start : start + step]
            arrays, retrieved, history = self._source_arrays(batch, self._attributes(batch, users_frame))
            rows, cols = np.nonzero(retrieved > 0)
            if len(rows) == 0:
                continue
            best = np.full(len(rows), np.inf)
            for _, rank, _ in arrays.values():
                best = np.fmin(best, rank[rows, cols])
            order = np.lexsort((cols, best, rows))  # ordered before the frame is built: one copy, not two
            rows, cols = rows[order], cols[order]
            data: dict[str, Any] = {
                "user_id": np.asarray(batch, dtype=object)[rows],
                "item_id": self.item_ids[cols],
            }
            for name, (score, rank, relative) in arrays.items():
                s, r, rel = source_columns(name)
                data[s], data[r], data[rel] = score[rows, cols], rank[rows, cols], relative[rows, cols]
            data[N_SOURCES] = retrieved[rows, cols].astype(np.float64)
            data[HISTORY] = history[rows, cols]
            frames.append(pd.DataFrame(data))
        if not frames:
            return pd.DataFrame(columns=["user_id", "item_id", *self._candidate_columns()])
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def _candidate_columns(self) -> list[str]:
        return [c for name in self.config.sources for c in source_columns(name)] + [N_SOURCES, HISTORY]

    def source_features(self, pairs: pd.DataFrame, users_frame: pd.DataFrame | None = None) -> pd.DataFrame:
        """The candidate columns of `candidates` for given (user_id, item_id) pairs, in their order and index
        (an item the package does not know gets nan scores and ranks)."""
        users = list(dict.fromkeys(pairs["user_id"].tolist()))
        user_pos = pd.Index(users, dtype=object).get_indexer(pairs["user_id"])
        item_pos = self._position.get_indexer(pairs["item_id"])
        out = {c: np.full(len(pairs), np.nan) for c in self._candidate_columns()}
        step = self._user_batches(len(users)).step
        for start in self._user_batches(len(users)):
            batch = users[start : start + step]
            mask = (user_pos >= start) & (user_pos < start + len(batch)) & (item_pos >= 0)
            rows, r, c = np.flatnonzero(mask), user_pos[mask] - start, item_pos[mask]
            arrays, retrieved, history = self._source_arrays(batch, self._attributes(batch, users_frame))
            for name, values in arrays.items():
                for column, array in zip(source_columns(name), values, strict=True):
                    out[column][rows] = array[r, c]
            out[N_SOURCES][rows] = retrieved[r, c]
            out[HISTORY][rows] = history[r, c]
        known = item_pos >= 0
        out[N_SOURCES][~known] = 0.0
        out[HISTORY][~known] = 0.0
        return pd.DataFrame(out, index=pairs.index)

    # -- ranking -------------------------------------------------------------------------------------------

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """One relevance score per candidate row (online features and source columns); higher ranks first."""
        if self.ranker is None:
            raise RuntimeError("the recommender has no ranker: build it with one or load it through MLflow")
        if len(frame) == 0:
            return np.empty(0, dtype=np.float64)
        return np.asarray(self.ranker.score(frame), dtype=np.float64)

    def explain(self, frame: pd.DataFrame, *, relative: bool = False) -> list[str]:
        """Per row, the feature that raised the score most ("" when none did or the ranker cannot say)."""
        if len(frame) == 0:
            return []
        if hasattr(self.ranker, "explain"):
            return list(self.ranker.explain(frame, relative=relative))
        return [""] * len(frame)

    def contributions(self, frame: pd.DataFrame) -> tuple[list[str], np.ndarray] | None:
        """(feature names, rows × features): the ranker's own attribution of each row's score to its features
        (LightGBM's SHAP values, the torch ranker's gradient × input, a blend's weighted sum of those); None
        when the ranker cannot attribute its scores."""
        if not hasattr(self.ranker, "contributions"):
            return None
        return list(self.ranker.feature_names), np.asarray(self.ranker.contributions(frame), dtype=np.float64)

    # -- items ---------------------------------------------------------------------------------------------

    def knows_item(self, item_id: Hashable) -> bool:
        return item_id in self._category_of

    def new_item_candidates(
        self, user_id: Hashable, users_frame: pd.DataFrame | None, items: pd.DataFrame
    ) -> pd.DataFrame:
        """Candidate rows (same columns as `candidates`) for items the package never saw, described by their
        attribute rows (`items`, indexed by item id): the sources that score items from attributes (the
        content-based one) rank them against the user's profile; the other sources leave them nan."""
        fresh = items[~items.index.isin(self.item_ids)]
        columns = ["user_id", "item_id", *self._candidate_columns()]
        if fresh.empty:
            return pd.DataFrame(columns=columns)
        data: dict[str, Any] = {c: np.full(len(fresh), np.nan) for c in self._candidate_columns()}
        retrieved = np.zeros(len(fresh))
        attributes = self._attributes([user_id], users_frame)
        for name in self.config.sources:
            generator = self.generators[name]
            if not hasattr(generator, "score_items"):
                continue
            codes = generator.index.codes([user_id])
            scores = generator.score_items(codes, attributes, generator.describe_items(fresh))[0]
            known = generator.score_block(codes, exclude_seen=False, attributes=attributes)[0]
            finite = np.isfinite(scores)
            if not finite.any():
                continue
            s, r, rel = source_columns(name)
            everything = np.concatenate([known[np.isfinite(known)], scores[finite]])
            best = everything.max()
            data[s] = np.where(finite, scores, np.nan)
            # Rank among the package's items and these together: where the source would have put them.
            data[r] = np.where(finite, 1.0 + (everything[None, :] > scores[:, None]).sum(axis=1), np.nan)
            with np.errstate(invalid="ignore", divide="ignore"):
                data[rel] = np.where(finite & (abs(best) > 1e-12), scores / best, np.nan)
            retrieved += finite
        data[N_SOURCES] = retrieved
        data[HISTORY] = np.zeros(len(fresh))
        frame = pd.DataFrame({"user_id": user_id, "item_id": list(fresh.index), **data})
        return frame[retrieved > 0].reset_index(drop=True)[columns]

    def item_similarity(self, item_id: Hashable) -> tuple[str, np.ndarray] | None:
        """(source, similarity of the item to each package item) from the first source, in configuration order,
        with an item-to-item notion that knows the item and says something of it; None otherwise."""
        position = self._position.get_indexer([item_id])[0]
        if position < 0:
            return None
        for name in self.config.sources:
            generator = self.generators[name]
            column = self._columns[name][position]
            if column < 0:
                continue
            similarity = generator.item_similarity(int(column))
            if similarity is None or not np.any(similarity):
                continue
            full = np.zeros(len(self.item_ids))
            known = self._columns[name] >= 0
            full[known] = similarity[self._columns[name][known]]
            full[position] = -np.inf  # never its own neighbour
            return name, full
        return None

    def similar(self, item_id: Hashable, k: int, items: pd.DataFrame | None = None) -> list[tuple[Any, float, str]]:
        """The `k` items most like `item_id` as (item id, similarity, source), best first. An item the package
        never saw is placed by its attribute row in `items` (content-based); [] when nothing can say."""
        found = self.item_similarity(item_id)
        if found is None and items is not None and item_id in items.index:
            for name in self.config.sources:
                generator = self.generators[name]
                if hasattr(generator, "describe_items"):
                    vector = generator.describe_items(items.loc[[item_id]])
                    full = np.full(len(self.item_ids), -np.inf)
                    known = self._columns[name] >= 0
                    full[known] = (generator.item_vectors @ vector.T).toarray().ravel()[self._columns[name][known]]
                    found = name, full
                    break
        if found is None:
            return []
        source, scores = found
        order = np.argsort(-scores, kind="stable")
        order = order[np.isfinite(scores[order]) & (scores[order] > 0)][:k]
        return [(self.item_ids[j], float(scores[j]), source) for j in order]

    def closest(self, item_id: Hashable, among: Sequence[Hashable]) -> Any | None:
        """Which of `among` (e.g. what the user completed) is most like `item_id` (None: none is alike)."""
        found = self.item_similarity(item_id)
        if found is None or not among:
            return None
        _, scores = found
        positions = self._position.get_indexer(list(among))
        ok = positions >= 0
        if not ok.any():
            return None
        values = scores[positions[ok]]
        best = int(np.argmax(values))
        return np.asarray(among, dtype=object)[ok][best] if values[best] > 0 else None

    def popular_for(self, users_frame: pd.DataFrame) -> list[Any]:
        """The package items the segment of the users described by one users-frame row used, most used first
        (by the first popularity source); [] when the row names no segment the source knows."""
        from models.generators.popularity import PopularityGenerator

        for name in self.config.sources:
            generator = self.generators[name]
            if isinstance(generator, PopularityGenerator):
                use = generator.segment_use(users_frame)
                if use is None:
                    return []
                columns = self._columns[name]
                full = np.zeros(len(self.item_ids))
                full[columns >= 0] = use[columns[columns >= 0]]
                order = np.argsort(-full, kind="stable")
                return [self.item_ids[j] for j in order if full[j] > 1e-12]
        return []

    def category_of(self, item_id: Hashable) -> Any:
        """The item's category as the slate policy sees it (None for an item the package does not know)."""
        return self._category_of.get(item_id)

    def slate(self, item_ids: Sequence[Hashable], scores: np.ndarray, k: int | None = None) -> np.ndarray:
        """Positions of the slate's rows, best first, by the configured slate policy."""
        categories = [self._category_of.get(i) for i in item_ids]
        return self.config.slate.select(categories, scores, k)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> np.ndarray:
        """Scores of candidate rows: `user_id`, `item_id` and the online features; the source columns are
        computed here when the frame does not carry them."""
        frame = model_input
        missing = [c for c in self._candidate_columns() if c not in frame.columns]
        if missing and {"user_id", "item_id"} <= set(frame.columns):
            computed = self.source_features(frame[["user_id", "item_id"]])
            kept = frame.drop(columns=[c for c in computed.columns if c in frame.columns])
            frame = pd.concat([kept, computed], axis=1)
        return self.score(frame)

    # -- persistence ---------------------------------------------------------------------------------------

    def save(self, directory: Path) -> Path:
        """Write the package under `directory` (created): configuration, items, generators, ranker."""
        from models.generators.persist import save_generator

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / CONFIG_FILE).write_text(self.config.to_json())
        ids = [i.item() if isinstance(i, np.generic) else i for i in self.item_ids]  # JSON keeps str and int ids
        items = {"item_ids": ids, "categories": self.categories.tolist()}
        (directory / ITEMS_FILE).write_text(json.dumps(items, default=str))
        for name in self.config.sources:
            save_generator(self.generators[name], directory / "generators" / name)
        save_ranker(self.ranker, directory / "ranker")
        return directory

    @classmethod
    def load(cls, directory: Path) -> PackagedRecommender:
        package = cls()
        package._load(Path(directory))
        return package

    def _load(self, directory: Path) -> None:
        from models.generators.persist import load_generator

        config = RecommenderConfig.from_json((directory / CONFIG_FILE).read_text())
        raw = json.loads((directory / ITEMS_FILE).read_text())
        items = pd.Series(raw["categories"], index=pd.Index(raw["item_ids"], dtype=object), dtype=object)
        generators = {name: load_generator(directory / "generators" / name) for name in config.sources}
        self._set(generators, load_ranker(directory / "ranker"), config, items)

    def load_context(self, context: Any) -> None:
        self._load(Path(context.artifacts[PACKAGE_ARTIFACT]))
