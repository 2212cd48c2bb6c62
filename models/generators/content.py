"""Content-based candidates: a user's profile from the attributes of what they used, cosine to every item.

Items only need attributes, not usage, so new content nobody has used yet is reachable. A cold user (no
interactions) is described by their own attributes (the users frame): columns named like item attribute
columns (level, equipment, or mapped: goal → category) are encoded in the items' attribute space directly,
and every categorical user attribute also stands for the mean profile of the training users who have it
(so a goal says which categories people with that goal use, whatever the two columns' values are).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.generators.base import ScoringGenerator


@dataclass
class AttributeEncoder:
    """Attribute columns → one vector space, fitted on the item table.

    Text/categorical columns become one-hot tokens (a value may hold several, split on `separator`, or be a
    list), weighted by inverse document frequency so rare attributes say more; numeric columns are
    standardised. Missing values, and columns absent from the frame encoded, contribute nothing.
    """

    columns: list[dict[str, Any]]  # {"name", "kind": "numeric", "mean", "std"} or {"name", "kind": "tokens", ...}
    separator: str = "|"

    @classmethod
    def fit(
        cls, items: pd.DataFrame, columns: Sequence[str] | None = None, *, separator: str = "|"
    ) -> AttributeEncoder:
        specs: list[dict[str, Any]] = []
        for column in columns if columns is not None else list(items.columns):
            values = items[column]
            if _is_numeric(values):
                numbers = values.astype(np.float64)
                std = float(numbers.std()) if numbers.notna().sum() > 1 else 0.0
                mean = float(numbers.mean()) if numbers.notna().any() else 0.0
                specs.append({"name": column, "kind": "numeric", "mean": mean, "std": std if std > 0 else 1.0})
                continue
            exploded = values.map(lambda v: _tokens(v, separator)).explode().dropna().astype(str)
            if exploded.empty:
                continue
            per_item = exploded.groupby(level=0).unique().explode()
            df = per_item.value_counts()
            vocab = sorted(df.index)
            idf = np.log((1.0 + len(items)) / (1.0 + df.reindex(vocab).to_numpy(dtype=np.float64))) + 1.0
            specs.append({"name": column, "kind": "tokens", "vocab": vocab, "idf": idf.tolist()})
        return cls(specs, separator)

    @property
    def width(self) -> int:
        return sum(1 if spec["kind"] == "numeric" else len(spec["vocab"]) for spec in self.columns)

    def transform(self, frame: pd.DataFrame) -> sp.csr_matrix:
        """Rows of `frame` as (unnormalised) attribute vectors.

        Built entry by entry in plain Python: serving describes one new user or item per request, where
        pandas' per-call overhead cost about 12 ms; at catalogue sizes this is as fast.
        """
        n = len(frame)
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        offset = 0
        for spec, lookup in zip(self.columns, self._lookups(), strict=True):
            name = spec["name"]
            if spec["kind"] == "numeric":
                if name in frame:
                    numbers = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
                    scaled = np.nan_to_num((numbers - spec["mean"]) / spec["std"], nan=0.0)
                    rows += range(n)
                    cols += [offset] * n
                    vals += scaled.tolist()
                offset += 1
                continue
            if name in frame:
                idf = spec["idf"]
                for r, value in enumerate(frame[name].tolist()):
                    for token in dict.fromkeys(_tokens(value, self.separator)):  # a token listed twice counts once
                        j = lookup.get(token)
                        if j is not None:
                            rows.append(r)
                            cols.append(offset + j)
                            vals.append(idf[j])
            offset += len(spec["vocab"])
        matrix = sp.csr_matrix((vals, (rows, cols)), shape=(n, offset))
        matrix.eliminate_zeros()
        return matrix

    def _lookups(self) -> list[dict[str, int]]:
        """Per column, token → its position in the column's vocabulary (empty for numeric columns)."""
        if getattr(self, "_lookup_cache", None) is None:
            self._lookup_cache = [{str(t): j for j, t in enumerate(spec.get("vocab", ()))} for spec in self.columns]
        return self._lookup_cache

    def to_json(self) -> dict[str, Any]:
        return {"columns": self.columns, "separator": self.separator}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AttributeEncoder:
        return cls(list(data["columns"]), str(data["separator"]))


def attribute_matrix(
    items: pd.DataFrame, columns: Sequence[str] | None = None, *, separator: str = "|"
) -> sp.csr_matrix:
    """Item attribute vectors (rows in `items` order), L2-normalised (see `AttributeEncoder`)."""
    return l2_rows(AttributeEncoder.fit(items, columns, separator=separator).transform(items))


def _is_numeric(values: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values))


def _tokens(value: object, separator: str) -> list[str]:
    if isinstance(value, list | tuple | set | np.ndarray):
        return [str(v) for v in value]
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return [t for t in str(value).split(separator) if t]


def l2_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return (sp.diags(1.0 / np.maximum(norms, 1e-12)) @ matrix).tocsr()


def _l2_dense(rows: np.ndarray) -> np.ndarray:
    norms = np.sqrt((rows * rows).sum(axis=1, keepdims=True))
    return rows / np.maximum(norms, 1e-12)


def _cosines(profiles: np.ndarray, vectors: sp.csr_matrix) -> np.ndarray:
    """Profiles (dense, normalised) × item vectors (sparse, normalised); -inf for a profile of nothing."""
    scores = np.asarray(vectors @ profiles.T).T
    scores[~profiles.any(axis=1)] = -np.inf  # nothing known: no candidates
    return scores


def user_tokens(users_frame: pd.DataFrame, vocabulary: Sequence[str] | None = None) -> tuple[sp.csr_matrix, list[str]]:
    """One-hot `column=value` tokens of the users' categorical attributes (numbers left out), and the
    vocabulary (the given one, or every token of the frame)."""
    per_row: list[list[str]] = [[] for _ in range(len(users_frame))]
    for column in users_frame.columns:
        if _is_numeric(users_frame[column]):
            continue
        for r, value in enumerate(users_frame[column].tolist()):
            per_row[r] += [f"{column}={t}" for t in _tokens(value, "|")]
    vocab = sorted({t for tokens in per_row for t in tokens}) if vocabulary is None else list(vocabulary)
    lookup = {t: j for j, t in enumerate(vocab)}
    rows, cols = [], []
    for r, tokens in enumerate(per_row):
        for token in dict.fromkeys(tokens):
            j = lookup.get(token)
            if j is not None:
                rows.append(r)
                cols.append(j)
    matrix = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(users_frame), len(vocab)))
    return matrix, [str(v) for v in vocab]


class ContentGenerator(ScoringGenerator):
    """Cosine between a user's attribute profile (sum of their items' vectors) and each item's vector.

    Needs the item attribute table (indexed by item id; `columns` picks the attribute columns, default all).
    `user_columns` maps users-frame columns to item attribute columns for cold users (default: the columns
    the two tables share by name).
    """

    _PARAMS = ("columns", "separator", "user_columns", "name")
    _STATE = ("item_vectors", "profiles", "token_profiles")
    _JSON_STATE = ("encoder_json", "user_vocabulary")

    def __init__(
        self,
        *,
        columns: Sequence[str] | None = None,
        separator: str = "|",
        user_columns: Mapping[str, str] | None = None,
        name: str = "content",
    ) -> None:
        self.columns = list(columns) if columns is not None else None
        self.separator, self.name = separator, name
        self.user_columns = dict(user_columns) if user_columns else None

    def _fit(self, interactions: pd.DataFrame, items: pd.DataFrame | None) -> None:
        if items is None:
            raise ValueError("the content-based generator needs an item attribute table")
        ordered = items.reindex(self.index.item_ids)  # catalogue order; used-but-undescribed items get nothing
        self.encoder = AttributeEncoder.fit(ordered, self.columns, separator=self.separator)
        self.encoder_json = self.encoder.to_json()
        self.item_vectors = l2_rows(self.encoder.transform(ordered))
        self.profiles = l2_rows((self.index.matrix @ self.item_vectors).tocsr())
        self.token_profiles: sp.csr_matrix | None = None
        self.user_vocabulary: list[str] = []

    def _fit_users(self, interactions: pd.DataFrame, users_frame: pd.DataFrame) -> None:
        described = users_frame.reindex(pd.Index(self.index.user_ids, dtype=object))
        tokens, self.user_vocabulary = user_tokens(described)
        # Mean profile of the training users holding each attribute value.
        counts = np.asarray(tokens.sum(axis=0)).ravel()
        self.token_profiles = (sp.diags(1.0 / np.maximum(counts, 1.0)) @ (tokens.T @ self.profiles)).tocsr()

    def _restore(self) -> None:
        self.encoder = AttributeEncoder.from_json(self.encoder_json)

    def _score(self, rows: np.ndarray) -> np.ndarray:
        return (self.profiles[rows] @ self.item_vectors.T).toarray()

    def _score_cold(self, attributes: pd.DataFrame | None) -> np.ndarray | None:
        profile = self._cold_profiles(attributes)
        return None if profile is None else _cosines(profile, self.item_vectors)

    def _cold_profiles(self, attributes: pd.DataFrame | None) -> np.ndarray | None:
        """Dense L2-normalised profiles of users described only by their attribute rows (a zero row: nothing
        known). Dense: a request describes one user, whose profile has a few hundred dimensions at most."""
        if attributes is None or attributes.empty:
            return None
        mapping = self.user_columns or {c: c for c in attributes.columns if c in self.encoder_columns()}
        direct = self.encoder.transform(attributes[[c for c in mapping if c in attributes]].rename(columns=mapping))
        profile = _l2_dense(direct.toarray())
        if self.token_profiles is not None:
            tokens, _ = user_tokens(attributes, self.user_vocabulary)
            profile = profile + _l2_dense((tokens @ self.token_profiles).toarray())
        return _l2_dense(profile)

    def describe_items(self, items: pd.DataFrame) -> sp.csr_matrix:
        """Attribute vectors of items given by their attribute rows (items published after training)."""
        return l2_rows(self.encoder.transform(items))

    def score_items(self, codes: np.ndarray, attributes: pd.DataFrame | None, vectors: sp.csr_matrix) -> np.ndarray:
        """Users (codes, -1: cold, described by `attributes`) × items given by their vectors: cosine scores
        (-inf where a user has no profile)."""
        out = np.full((len(codes), vectors.shape[0]), -np.inf)
        known = codes >= 0
        if known.any():
            out[known] = (self.profiles[codes[known]] @ vectors.T).toarray()
        if not known.all():
            profile = self._cold_profiles(None if attributes is None else attributes.iloc[np.flatnonzero(~known)])
            if profile is not None:
                out[~known] = _cosines(profile, vectors)
        return out

    def item_similarity(self, code: int) -> np.ndarray:
        return (self.item_vectors @ self.item_vectors[code].T).toarray().ravel()

    def encoder_columns(self) -> set[str]:
        return {spec["name"] for spec in self.encoder.columns}
