"""The candidate generator interface and the user × item index every matrix-based generator shares.

Interactions are a frame with columns `user_id`, `item_id`, `weight` (defaults to 1) and `timestamp`
(seconds; optional). An item attribute table, when given, is indexed by `item_id` and puts items nobody
has used yet into the catalogue (only attribute-aware generators can reach them).

`recommend` answers one frame `user_id, item_id, score, rank, source` (rank from 1, per user), so the
candidates of several sources can be merged with each source's score and rank kept as ranker features.
Both `fit` and `recommend` take an optional `users_frame` (user attributes indexed by user_id: goal, level,
equipment, ...): generators that can use it describe cold users from it, the others ignore it.
Every generator saves and loads itself without pickle (`save(directory)`, `load(directory)`).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol, Self, runtime_checkable

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

    def fit(
        self, interactions: pd.DataFrame, items: pd.DataFrame | None = None, *, users_frame: pd.DataFrame | None = None
    ) -> Self: ...

    def recommend(
        self,
        users: Sequence[Hashable],
        k: int,
        *,
        exclude_seen: bool = True,
        users_frame: pd.DataFrame | None = None,
    ) -> pd.DataFrame: ...

    def save(self, directory: Path) -> None: ...


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
    """A generator that scores every catalogue item for a user; subclasses give `_fit` and `_score`.

    Persistence without pickle: `save` writes `params.json` (the constructor keywords named in `_PARAMS`
    and the JSON state named in `_JSON_STATE`), `arrays.npz` (dense fitted arrays named in `_STATE`, and the
    index's ids) and one scipy `.npz` per sparse fitted matrix; `load` rebuilds the generator from them.
    State that can be derived from the index is rebuilt by `_restore` instead of being stored.
    """

    name: str
    index: InteractionIndex
    _PARAMS: ClassVar[tuple[str, ...]] = ("name",)
    _STATE: ClassVar[tuple[str, ...]] = ()  # numpy or scipy.sparse attributes (None allowed)
    _JSON_STATE: ClassVar[tuple[str, ...]] = ()  # JSON-serialisable attributes

    def fit(
        self, interactions: pd.DataFrame, items: pd.DataFrame | None = None, *, users_frame: pd.DataFrame | None = None
    ) -> Self:
        """Fit on interactions (+ item attributes); `users_frame` (indexed by user_id) describes the users."""
        self.index = InteractionIndex.build(interactions, items)
        self._fit(interactions, items)
        if users_frame is not None:
            self._fit_users(interactions, users_frame)
        return self

    @abstractmethod
    def _fit(self, interactions: pd.DataFrame, items: pd.DataFrame | None) -> None: ...

    def _fit_users(self, interactions: pd.DataFrame, users_frame: pd.DataFrame) -> None:
        """Learn from the training users' attributes; generators that cannot use them ignore them."""
        return None

    @abstractmethod
    def _score(self, rows: np.ndarray) -> np.ndarray:
        """Dense scores (len(rows) × n_items) for user row codes `rows` (all >= 0)."""

    def _score_cold(self, attributes: pd.DataFrame | None) -> np.ndarray | None:
        """Scores (n_items, or one row per user) for users not seen in training, from their attribute rows
        (`attributes`, one per cold user, all-NaN when the user is not described; None without a users
        frame). None: they get no candidates."""
        return None

    def item_similarity(self, code: int) -> np.ndarray | None:
        """How strongly the item of `code` points to each item (higher: more alike), or None when this
        generator has no item-to-item notion."""
        return None

    def _score_users(self, codes: np.ndarray, attributes: pd.DataFrame | None) -> np.ndarray:
        """Scores of a block of users (codes, -1 for cold users) with their attribute rows, if any."""
        out = np.full((len(codes), self.index.n_items), -np.inf)
        known = codes >= 0
        if known.any():
            out[known] = self._score(codes[known])
        if not known.all():
            cold = self._score_cold(None if attributes is None else attributes.iloc[np.flatnonzero(~known)])
            if cold is not None:
                out[~known] = cold
        return out

    def score_block(
        self, codes: np.ndarray, *, exclude_seen: bool, attributes: pd.DataFrame | None = None
    ) -> np.ndarray:
        """Scores for user codes (-1: unknown user), seen items at -inf when asked."""
        out = self._score_users(codes, attributes)
        known = codes >= 0
        if exclude_seen and known.any():
            seen = self.index.matrix[codes[known]]
            rows = np.flatnonzero(known)[np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))]
            out[rows, seen.indices] = -np.inf
        return out

    def _batches(self, n: int) -> range:
        return range(0, n, max(1, _BLOCK_FLOATS // max(1, self.index.n_items)))

    def recommend(
        self,
        users: Sequence[Hashable],
        k: int,
        *,
        exclude_seen: bool = True,
        users_frame: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        users = list(users)
        codes = self.index.codes(users)
        user_array = np.asarray(users, dtype=object)
        attributes = None if users_frame is None else users_frame.reindex(pd.Index(users, dtype=object))
        frames = []
        step = self._batches(len(users)).step
        for start in self._batches(len(users)):
            block = self.score_block(
                codes[start : start + step],
                exclude_seen=exclude_seen,
                attributes=None if attributes is None else attributes.iloc[start : start + step],
            )
            columns, values = top_k(block, k)
            frames.append(
                candidates_frame(user_array[start : start + step], self.index.item_ids[columns], values, self.name)
            )
        if not frames:
            return pd.DataFrame(columns=CANDIDATE_COLUMNS)
        return pd.concat(frames, ignore_index=True)

    def score_pairs(
        self, users: Sequence[Hashable], items: Sequence[Hashable], *, users_frame: pd.DataFrame | None = None
    ) -> np.ndarray:
        """This generator's score of each (user, item) pair; nan for an unknown item or an unscored user."""
        users_s, items_s = pd.Series(list(users), dtype=object), pd.Series(list(items), dtype=object)
        columns = pd.Index(self.index.item_ids).get_indexer(items_s)
        out = np.full(len(users_s), np.nan)
        # One score row per distinct user (cold users too: their attributes may differ).
        distinct = pd.Index(users_s.unique(), dtype=object)
        position = distinct.get_indexer(users_s)
        codes = self.index.codes(distinct.tolist())
        attributes = None if users_frame is None else users_frame.reindex(distinct)
        order = np.argsort(position, kind="stable")
        bounds = np.r_[np.searchsorted(position[order], np.arange(len(distinct))), len(order)]
        step = self._batches(len(distinct)).step
        for start in range(0, len(distinct), step):
            block = self.score_block(
                codes[start : start + step],
                exclude_seen=False,
                attributes=None if attributes is None else attributes.iloc[start : start + step],
            )
            for j in range(block.shape[0]):
                rows = order[bounds[start + j] : bounds[start + j + 1]]
                cols = columns[rows]
                ok = cols >= 0
                out[rows[ok]] = block[j, cols[ok]]
        out[~np.isfinite(out)] = np.nan
        return out

    # Persistence -------------------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write the parameters and the fitted state under `directory` (numpy, scipy and JSON files only)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        arrays["user_ids"], user_kind = _encode_ids(self.index.user_ids)
        arrays["item_ids"], item_kind = _encode_ids(self.index.item_ids)
        sp.save_npz(directory / "index_matrix.npz", self.index.matrix.tocsr())
        sparse, missing = [], []
        for key in self._STATE:
            value = getattr(self, key, None)
            if value is None:
                missing.append(key)
            elif sp.issparse(value):
                sp.save_npz(directory / f"state_{key}.npz", sp.csr_matrix(value))
                sparse.append(key)
            else:
                arrays[f"state_{key}"] = np.asarray(value)
        np.savez(directory / "arrays.npz", **arrays)  # type: ignore[arg-type]
        meta = {
            "class": type(self).__name__,
            "params": {key: getattr(self, key) for key in self._PARAMS},
            "json_state": {key: getattr(self, key, None) for key in self._JSON_STATE},
            "sparse_state": sparse,
            "missing_state": missing,
            "id_kinds": {"user": user_kind, "item": item_kind},
        }
        (directory / "params.json").write_text(json.dumps(meta, indent=1, default=_json_default))

    @classmethod
    def load(cls, directory: Path) -> Self:
        """A generator written by `save`, giving the same scores."""
        directory = Path(directory)
        meta = json.loads((directory / "params.json").read_text())
        if meta["class"] != cls.__name__:
            raise ValueError(f"{directory} holds a {meta['class']}, not a {cls.__name__}")
        generator = cls(**meta["params"])
        with np.load(directory / "arrays.npz", allow_pickle=False) as arrays:
            user_ids = _decode_ids(arrays["user_ids"], meta["id_kinds"]["user"])
            item_ids = _decode_ids(arrays["item_ids"], meta["id_kinds"]["item"])
            dense = {key[len("state_") :]: arrays[key] for key in arrays.files if key.startswith("state_")}
        matrix = sp.load_npz(directory / "index_matrix.npz").tocsr().astype(np.float64)
        generator.index = InteractionIndex(user_ids, item_ids, matrix, {u: i for i, u in enumerate(user_ids)})
        for key in cls._STATE:
            if key in meta["sparse_state"]:
                setattr(generator, key, sp.load_npz(directory / f"state_{key}.npz").tocsr())
            elif key in meta["missing_state"]:
                setattr(generator, key, None)
            else:
                setattr(generator, key, dense[key])
        for key, value in meta["json_state"].items():
            setattr(generator, key, value)
        generator._restore()
        return generator

    def _restore(self) -> None:
        """Rebuild derived state after `load` (e.g. the binarised matrix from the index)."""
        return None


def _encode_ids(ids: np.ndarray) -> tuple[np.ndarray, str]:
    """Ids as a numpy array np.load reads without pickle: int64 when every id is an integer, else text."""
    values = np.asarray(ids)
    if values.dtype.kind in "iu":
        return values.astype(np.int64), "int"
    if len(values) and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
        return values.astype(np.int64), "int"
    return np.asarray([str(v) for v in values], dtype=str), "str"


def _decode_ids(values: np.ndarray, kind: str) -> np.ndarray:
    if kind == "int":
        return values.astype(np.int64)
    return np.asarray(values.tolist(), dtype=object)


def _json_default(value: object) -> object:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, tuple | np.ndarray):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
