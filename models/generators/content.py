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
        """Rows of `frame` as (unnormalised) attribute vectors."""
        blocks = []
        for spec in self.columns:
            if spec["kind"] == "numeric":
                if spec["name"] in frame:
                    numbers = pd.to_numeric(frame[spec["name"]], errors="coerce").astype(np.float64)
                    scaled = ((numbers - spec["mean"]) / spec["std"]).fillna(0.0).to_numpy()
                else:
                    scaled = np.zeros(len(frame))
                blocks.append(sp.csr_matrix(scaled[:, None]))
                continue
            vocab = pd.Index(spec["vocab"])
            onehot = sp.csr_matrix((len(frame), len(vocab)))
            if spec["name"] in frame:
                exploded = frame[spec["name"]].map(lambda v: _tokens(v, self.separator))
                exploded = exploded.reset_index(drop=True).explode().dropna().astype(str)
                codes = vocab.get_indexer(exploded.to_numpy())
                rows = exploded.index.to_numpy()[codes >= 0]
                onehot = sp.csr_matrix((np.ones(len(rows)), (rows, codes[codes >= 0])), shape=(len(frame), len(vocab)))
                onehot.data[:] = 1.0  # a token listed twice counts once
            blocks.append(onehot @ sp.diags(np.asarray(spec["idf"])))
        if not blocks:
            return sp.csr_matrix((len(frame), 0))
        return sp.hstack(blocks).tocsr()

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


def user_tokens(users_frame: pd.DataFrame, vocabulary: Sequence[str] | None = None) -> tuple[sp.csr_matrix, list[str]]:
    """One-hot `column=value` tokens of the users' categorical attributes (numbers left out), and the
    vocabulary (the given one, or every token of the frame)."""
    pairs = []
    for column in users_frame.columns:
        if _is_numeric(users_frame[column]):
            continue
        values = users_frame[column].reset_index(drop=True).map(lambda v: _tokens(v, "|")).explode().dropna()
        pairs.append(pd.Series(f"{column}=" + values.astype(str), index=values.index))
    tokens = pd.concat(pairs) if pairs else pd.Series([], dtype=str)
    vocab = pd.Index(sorted(tokens.unique()) if vocabulary is None else list(vocabulary))
    codes = vocab.get_indexer(tokens.to_numpy())
    keep = codes >= 0
    matrix = sp.csr_matrix(
        (np.ones(int(keep.sum())), (tokens.index.to_numpy()[keep], codes[keep])), shape=(len(users_frame), len(vocab))
    )
    matrix.data[:] = 1.0
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
        if profile is None:
            return None
        scores = (profile @ self.item_vectors.T).toarray()
        scores[np.asarray(abs(profile).sum(axis=1)).ravel() == 0] = -np.inf  # nothing known: no candidates
        return scores

    def _cold_profiles(self, attributes: pd.DataFrame | None) -> sp.csr_matrix | None:
        """L2-normalised profiles of users described only by their attribute rows (a zero row: nothing known)."""
        if attributes is None or attributes.empty:
            return None
        mapping = self.user_columns or {c: c for c in attributes.columns if c in self.encoder_columns()}
        direct = self.encoder.transform(attributes[[c for c in mapping if c in attributes]].rename(columns=mapping))
        profile = l2_rows(direct)
        if self.token_profiles is not None:
            tokens, _ = user_tokens(attributes, self.user_vocabulary)
            profile = profile + l2_rows((tokens @ self.token_profiles).tocsr())
        return l2_rows(profile.tocsr())

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
                scores = (profile @ vectors.T).toarray()
                scores[np.asarray(abs(profile).sum(axis=1)).ravel() == 0] = -np.inf
                out[~known] = scores
        return out

    def item_similarity(self, code: int) -> np.ndarray:
        return (self.item_vectors @ self.item_vectors[code].T).toarray().ravel()

    def encoder_columns(self) -> set[str]:
        return {spec["name"] for spec in self.encoder.columns}
