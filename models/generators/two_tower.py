"""A PyTorch two-tower retrieval model: user and item towers over ID embeddings and side features.

Each tower reads an ID embedding (row 0 is the "unknown" ID) and, when given, its entity's attributes:
categorical and multi-valued columns ("|"-separated strings or lists, e.g. muscles) as mean-pooled token
embeddings, numeric columns standardised with missing values set to 0 plus a missing indicator, and a
"no known token" indicator per categorical column. The tower is a linear map plus a one-hidden-layer MLP
of that input; its output is L2-normalised (cosine / temperature) unless `normalize=False` (dot product),
and the item tower adds a bias (the item's popularity) to the score.

Training: in-batch negatives, i.e. a sampled softmax over the items of the batch, with the logQ correction
(Yi et al., RecSys 2019): each logit loses log q(item), the item's share of the training positives, so
popular items are not punished for being everybody's negative; accidental hits (the same item as another
row's positive) are masked. IDs are dropped out at random (`id_dropout`) so the attribute path learns to
stand on its own: a user not seen in training is embedded from their side features (`users_frame`) alone,
and an item nobody has used yet (in the item table, absent from interactions) from its attributes.

Retrieval is by inner product (`models.ann.InnerProductIndex`): exact up to `exact_max_items` items, an
HNSW index beyond. Persistence: `torch.save(state_dict)`, JSON and `np.savez`, no pickle.

Pure model code: imports no other package of the project except `models`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from models.ann import InnerProductIndex
from models.generators.base import (
    CANDIDATE_COLUMNS,
    InteractionIndex,
    ScoringGenerator,
    candidates_frame,
    interaction_weights,
    top_k,
)
from models.torch_hooks import TrainHooks

CONFIG_FILE = "two_tower.json"
STATE_FILE = "two_tower_state.pt"
ARRAYS_FILE = "two_tower_arrays.npz"
SEEN_FILE = "two_tower_seen.npz"
ANN_DIR = "ann"
_FORMAT = 1
_MAX_TOKENS = 16
_MAX_VOCAB = 20_000


def _tokens(value: object, separator: str) -> list[str]:
    if isinstance(value, list | tuple | set | np.ndarray):
        return [str(v) for v in value if v is not None]
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return []
    return [t.strip() for t in str(value).split(separator) if t.strip()]


def _is_numeric(series: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series))


@dataclass
class SideEncoder:
    """Fitted layout of an attribute frame: numeric means/stds, token vocabularies (index 0 = none)."""

    numeric: list[str] = field(default_factory=list)
    means: list[float] = field(default_factory=list)
    stds: list[float] = field(default_factory=list)
    vocab: dict[str, list[str]] = field(default_factory=dict)
    max_tokens: dict[str, int] = field(default_factory=dict)
    separator: str = "|"

    @classmethod
    def fit(cls, frame: pd.DataFrame | None, columns: Sequence[str] | None, *, separator: str = "|") -> SideEncoder:
        encoder = cls(separator=separator)
        if frame is None:
            return encoder
        for column in columns if columns is not None else list(frame.columns):
            values = frame[column]
            if _is_numeric(values):
                numbers = values.astype(np.float64)
                std = float(numbers.std()) if numbers.notna().sum() > 1 else 0.0
                mean = float(numbers.mean()) if numbers.notna().any() else 0.0
                encoder.numeric.append(column)
                encoder.means.append(mean)
                encoder.stds.append(std if std > 0 and math.isfinite(std) else 1.0)
                continue
            tokens = values.map(lambda v: _tokens(v, separator))
            counts = tokens.explode().dropna().value_counts()
            if counts.empty:
                continue
            kept = counts.index[:_MAX_VOCAB].astype(str)
            encoder.vocab[column] = sorted(kept)
            encoder.max_tokens[column] = int(min(_MAX_TOKENS, max(1, tokens.map(len).max())))
        return encoder

    @property
    def categorical(self) -> list[str]:
        return list(self.vocab)

    @property
    def n_dense(self) -> int:
        """Numeric values + their missing indicators + one "no token" indicator per categorical column."""
        return 2 * len(self.numeric) + len(self.vocab)

    def encode(self, frame: pd.DataFrame | None, n: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """(dense float32 n × n_dense, one int64 n × max_tokens token-code array per categorical column)."""
        dense = np.zeros((n, self.n_dense), dtype=np.float32)
        tokens_out = [np.zeros((n, self.max_tokens[c]), dtype=np.int64) for c in self.vocab]
        if frame is None:
            dense[:, len(self.numeric) : 2 * len(self.numeric)] = 1.0
            dense[:, 2 * len(self.numeric) :] = 1.0
            return dense, tokens_out
        for j, column in enumerate(self.numeric):
            values = (
                pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
                if column in frame
                else np.full(n, np.nan)
            )
            missing = ~np.isfinite(values)
            dense[:, j] = np.where(missing, 0.0, (values - self.means[j]) / self.stds[j])
            dense[:, len(self.numeric) + j] = missing
        for c, column in enumerate(self.vocab):
            lookup = {token: i + 1 for i, token in enumerate(self.vocab[column])}
            width = self.max_tokens[column]
            out = tokens_out[c]
            values = frame[column].tolist() if column in frame else [None] * n
            for row, value in enumerate(values):
                codes = [lookup[t] for t in _tokens(value, self.separator) if t in lookup][:width]
                out[row, : len(codes)] = codes
            dense[:, 2 * len(self.numeric) + c] = (out == 0).all(axis=1)
        return dense, tokens_out

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": self.numeric,
            "means": self.means,
            "stds": self.stds,
            "vocab": self.vocab,
            "max_tokens": self.max_tokens,
            "separator": self.separator,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SideEncoder:
        return cls(**raw)


class Tower(nn.Module):
    """ID embedding + pooled token embeddings + dense side features -> linear + MLP -> output vector."""

    def __init__(
        self,
        *,
        n_ids: int,
        vocab_sizes: Sequence[int],
        n_dense: int,
        dim: int,
        id_dim: int,
        token_dim: int,
        hidden: int,
    ) -> None:
        super().__init__()
        self.ids = nn.Embedding(n_ids + 1, id_dim)
        nn.init.normal_(self.ids.weight, std=0.05)
        self.tokens = nn.ModuleList(nn.Embedding(v + 1, token_dim, padding_idx=0) for v in vocab_sizes)
        width = id_dim + token_dim * len(vocab_sizes) + n_dense
        self.linear = nn.Linear(width, dim)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def forward(self, ids: torch.Tensor, dense: torch.Tensor, tokens: Sequence[torch.Tensor]) -> torch.Tensor:
        parts = [self.ids(ids)]
        for embedding, codes in zip(self.tokens, tokens, strict=True):
            counts = (codes > 0).sum(dim=1, keepdim=True).clamp(min=1)
            parts.append(embedding(codes).sum(dim=1) / counts)
        parts.append(dense)
        x = torch.cat(parts, dim=1)
        return self.linear(x) + self.mlp(x)


class TwoTowerNet(nn.Module):
    """The two towers; `forward` embeds a batch of users and a batch of items (what DDP wraps).

    The item tower has one more output, the item's bias (its popularity, learnt from IDs and attributes).
    Retrieval vectors fold the temperature and the bias in, so the score is one inner product:
    user [u / t, 1] · item [v, b] = u·v / t + b (u, v unit vectors when normalising, t = 1 otherwise).
    """

    def __init__(self, user: Tower, item: Tower, *, normalize: bool, temperature: float) -> None:
        super().__init__()
        self.user, self.item, self.normalize = user, item, normalize
        self.scale = 1.0 / temperature if normalize else 1.0

    def embed_users(self, ids: torch.Tensor, dense: torch.Tensor, tokens: Sequence[torch.Tensor]) -> torch.Tensor:
        out = self.user(ids, dense, tokens)
        if self.normalize:
            out = F.normalize(out, dim=1)
        return torch.cat([out * self.scale, torch.ones(len(out), 1)], dim=1)

    def embed_items(self, ids: torch.Tensor, dense: torch.Tensor, tokens: Sequence[torch.Tensor]) -> torch.Tensor:
        out = self.item(ids, dense, tokens)
        vector, bias = out[:, :-1], out[:, -1:]
        if self.normalize:
            vector = F.normalize(vector, dim=1)
        return torch.cat([vector, bias], dim=1)

    def forward(
        self,
        user_ids: torch.Tensor,
        user_dense: torch.Tensor,
        user_tokens: Sequence[torch.Tensor],
        item_ids: torch.Tensor,
        item_dense: torch.Tensor,
        item_tokens: Sequence[torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            self.embed_users(user_ids, user_dense, user_tokens),
            self.embed_items(item_ids, item_dense, item_tokens),
        )


class TwoTowerGenerator(ScoringGenerator):
    """Two-tower candidates by inner product; cold users from `users_frame`, unseen items from attributes."""

    net: TwoTowerNet
    user_encoder: SideEncoder
    item_encoder: SideEncoder
    ann: InnerProductIndex

    def __init__(
        self,
        *,
        dim: int = 64,
        id_dim: int = 64,
        token_dim: int = 16,
        hidden: int = 128,
        normalize: bool = True,
        temperature: float = 0.3,
        logq_correction: bool = True,
        id_dropout: float = 0.1,
        epochs: int = 20,
        batch_size: int = 512,
        lr: float = 0.005,
        weight_decay: float = 0.0,
        user_columns: Sequence[str] | None = None,
        item_columns: Sequence[str] | None = None,
        separator: str = "|",
        exact_max_items: int = 50_000,
        ann_ef_search: int = 128,
        threads: int = 1,
        seed: int = 42,
        name: str = "two_tower",
    ) -> None:
        self.dim, self.id_dim, self.token_dim, self.hidden = dim, id_dim, token_dim, hidden
        self.normalize, self.temperature, self.logq_correction = normalize, temperature, logq_correction
        self.id_dropout, self.epochs, self.batch_size, self.lr = id_dropout, epochs, batch_size, lr
        self.weight_decay = weight_decay
        self.user_columns = list(user_columns) if user_columns is not None else None
        self.item_columns = list(item_columns) if item_columns is not None else None
        self.separator, self.exact_max_items, self.ann_ef_search = separator, exact_max_items, ann_ef_search
        self.threads, self.seed, self.name = threads, seed, name
        self.history: list[dict[str, float]] = []
        self.train_metrics: dict[str, Any] = {}  # what the runner that fitted it reported (Ray Train)

    # -- configuration ---------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "id_dim": self.id_dim,
            "token_dim": self.token_dim,
            "hidden": self.hidden,
            "normalize": self.normalize,
            "temperature": self.temperature,
            "logq_correction": self.logq_correction,
            "id_dropout": self.id_dropout,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "user_columns": self.user_columns,
            "item_columns": self.item_columns,
            "separator": self.separator,
            "exact_max_items": self.exact_max_items,
            "ann_ef_search": self.ann_ef_search,
            "threads": self.threads,
            "seed": self.seed,
            "name": self.name,
        }

    # -- training --------------------------------------------------------------------------------------
    def fit(
        self,
        interactions: pd.DataFrame,
        items: pd.DataFrame | None = None,
        *,
        users_frame: pd.DataFrame | None = None,
        hooks: TrainHooks | None = None,
    ) -> Self:
        self.index = InteractionIndex.build(interactions, items)
        self._train(interactions, items, users_frame, hooks or TrainHooks())
        return self

    def _fit(self, interactions: pd.DataFrame, items: pd.DataFrame | None) -> None:
        self._train(interactions, items, None, TrainHooks())

    def _build_net(self, n_users: int, n_items: int) -> TwoTowerNet:
        def tower(n_ids: int, encoder: SideEncoder, dim: int) -> Tower:
            return Tower(
                n_ids=n_ids,
                vocab_sizes=[len(encoder.vocab[c]) for c in encoder.vocab],
                n_dense=encoder.n_dense,
                dim=dim,
                id_dim=self.id_dim,
                token_dim=self.token_dim,
                hidden=self.hidden,
            )

        return TwoTowerNet(
            tower(n_users, self.user_encoder, self.dim),
            tower(n_items, self.item_encoder, self.dim + 1),
            normalize=self.normalize,
            temperature=self.temperature,
        )

    def _train(
        self,
        interactions: pd.DataFrame,
        items: pd.DataFrame | None,
        users_frame: pd.DataFrame | None,
        hooks: TrainHooks,
    ) -> None:
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(max(1, self.threads))
        try:
            self._train_inner(interactions, items, users_frame, hooks)
        finally:
            torch.set_num_threads(previous_threads)

    def _train_inner(
        self,
        interactions: pd.DataFrame,
        items: pd.DataFrame | None,
        users_frame: pd.DataFrame | None,
        hooks: TrainHooks,
    ) -> None:
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        n_users, n_items = len(self.index.user_ids), self.index.n_items
        weights = interaction_weights(interactions)
        positive = weights > 0
        user_rows = self.index.codes(interactions["user_id"].tolist())[positive]
        item_rows = pd.Index(self.index.item_ids).get_indexer(interactions["item_id"])[positive]

        self.user_encoder = SideEncoder.fit(
            _train_rows(users_frame, self.index.user_ids), self.user_columns, separator=self.separator
        )
        self.item_encoder = SideEncoder.fit(
            _train_rows(items, self.index.item_ids), self.item_columns, separator=self.separator
        )
        user_dense, user_tokens = self.user_encoder.encode(_train_rows(users_frame, self.index.user_ids), n_users)
        item_dense, item_tokens = self.item_encoder.encode(_train_rows(items, self.index.item_ids), n_items)
        # Items nobody used in training have no ID of their own: they share the "unknown" ID 0.
        item_counts = np.bincount(item_rows, minlength=n_items)
        self.item_id_codes = np.where(item_counts > 0, np.arange(1, n_items + 1), 0).astype(np.int64)
        user_id_codes = np.arange(1, n_users + 1, dtype=np.int64)

        net = self._build_net(n_users, n_items)
        self.net = net
        trained: nn.Module = hooks.wrap_module(net) if hooks.wrap_module is not None else net
        optimiser = torch.optim.Adam(trained.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        log_q = torch.from_numpy(np.log(np.maximum(item_counts, 1) / max(1, item_counts.sum()))).float()

        t_user_dense, t_item_dense = torch.from_numpy(user_dense), torch.from_numpy(item_dense)
        t_user_tokens = [torch.from_numpy(t) for t in user_tokens]
        t_item_tokens = [torch.from_numpy(t) for t in item_tokens]
        t_user_ids, t_item_ids = torch.from_numpy(user_id_codes), torch.from_numpy(self.item_id_codes)
        n = len(user_rows)
        per_worker = n // max(1, hooks.world_size)
        batches = max(1, math.ceil(per_worker / self.batch_size))
        self.history = []
        for epoch in range(self.epochs):
            trained.train()
            order = rng.permutation(n)[: per_worker * hooks.world_size][hooks.rank :: hooks.world_size]
            total = 0.0
            for b in range(batches):
                rows = order[b * self.batch_size : (b + 1) * self.batch_size]
                if len(rows) == 0:
                    continue
                users_b = torch.from_numpy(user_rows[rows])
                items_b = torch.from_numpy(item_rows[rows])
                uid, iid = t_user_ids[users_b], t_item_ids[items_b]
                if self.id_dropout > 0:
                    uid = torch.where(torch.rand(len(uid)) < self.id_dropout, torch.zeros_like(uid), uid)
                    iid = torch.where(torch.rand(len(iid)) < self.id_dropout, torch.zeros_like(iid), iid)
                u, v = trained(
                    uid,
                    t_user_dense[users_b],
                    [t[users_b] for t in t_user_tokens],
                    iid,
                    t_item_dense[items_b],
                    [t[items_b] for t in t_item_tokens],
                )
                logits = u @ v.T
                if self.logq_correction:
                    logits = logits - log_q[items_b][None, :]
                same = items_b[None, :] == items_b[:, None]
                same.fill_diagonal_(False)
                logits = logits.masked_fill(same, float("-inf"))
                loss = F.cross_entropy(logits, torch.arange(len(rows)))
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(rows)
            metrics = {"epoch": float(epoch + 1), "loss": total / max(1, per_worker)}
            self.history.append(metrics)
            if hooks.on_epoch is not None:
                hooks.on_epoch(epoch, metrics)

        # A wrapper (DDP) shares the network's parameters: the unwrapped network is the trained one.
        net.eval()
        with torch.no_grad():
            self.item_vectors = _batched(
                lambda r: self.net.embed_items(t_item_ids[r], t_item_dense[r], [t[r] for t in t_item_tokens]), n_items
            )
            self.user_vectors = _batched(
                lambda r: self.net.embed_users(t_user_ids[r], t_user_dense[r], [t[r] for t in t_user_tokens]), n_users
            )
        self.unknown_user_vector = self._embed_side(None, 1)[0]
        self._build_index()

    def reindex(self, *, exact_max_items: int) -> Self:
        """Rebuild the retrieval index for another exact/approximate threshold (the vectors stay)."""
        self.exact_max_items = exact_max_items
        self._build_index()
        return self

    def _build_index(self) -> None:
        self.ann = InnerProductIndex(
            self.item_vectors,
            exact_max_items=self.exact_max_items,
            ef_search=self.ann_ef_search,
            threads=max(1, self.threads),
        )

    # -- embeddings ------------------------------------------------------------------------------------
    def _embed_side(self, frame: pd.DataFrame | None, n: int, ids: np.ndarray | None = None) -> np.ndarray:
        """User vectors from side features (rows of `frame`, or none at all), with the given ID codes."""
        dense, tokens = self.user_encoder.encode(frame, n)
        codes = torch.from_numpy(ids if ids is not None else np.zeros(n, dtype=np.int64))
        with torch.no_grad():
            self.net.eval()
            return _batched(
                lambda r: self.net.embed_users(
                    codes[r], torch.from_numpy(dense)[r], [torch.from_numpy(t)[r] for t in tokens]
                ),
                n,
            )

    def user_embeddings(self, users: Sequence[Hashable], users_frame: pd.DataFrame | None = None) -> np.ndarray:
        """One vector per user: the trained one, or from `users_frame`'s row (fresh attributes) when given."""
        users = list(users)
        codes = self.index.codes(users)
        out = np.empty((len(users), self.item_vectors.shape[1]), dtype=np.float32)
        known = codes >= 0
        out[known] = self.user_vectors[codes[known]]
        out[~known] = self.unknown_user_vector
        if users_frame is not None and len(users_frame):
            fresh = pd.Index(users_frame.index).get_indexer(users)
            rows = np.flatnonzero(fresh >= 0)
            if len(rows):
                frame = users_frame.iloc[fresh[rows]]
                ids = np.where(codes[rows] >= 0, codes[rows] + 1, 0).astype(np.int64)
                out[rows] = self._embed_side(frame, len(rows), ids)
        return out

    # -- scoring and retrieval -------------------------------------------------------------------------
    def _score(self, rows: np.ndarray) -> np.ndarray:
        return (self.user_vectors[rows] @ self.item_vectors.T).astype(np.float64)

    def _score_cold(self, attributes: pd.DataFrame | None) -> np.ndarray:
        """Cold users from their attribute rows (all missing without a users frame)."""
        if attributes is None:
            return (self.item_vectors @ self.unknown_user_vector).astype(np.float64)
        vectors = self._embed_side(attributes, len(attributes))
        return (vectors @ self.item_vectors.T).astype(np.float64)

    def recommend(
        self,
        users: Sequence[Hashable],
        k: int,
        *,
        exclude_seen: bool = True,
        users_frame: pd.DataFrame | None = None,
    ) -> pd.DataFrame:
        users = list(users)
        if not users or k <= 0:
            return pd.DataFrame(columns=CANDIDATE_COLUMNS)
        codes = self.index.codes(users)
        user_array = np.asarray(users, dtype=object)
        frames = []
        step = self._batches(len(users)).step
        for start in range(0, len(users), step):
            block_users = users[start : start + step]
            block_codes = codes[start : start + step]
            vectors = self.user_embeddings(block_users, users_frame)
            if self.ann.approximate:
                columns, values = self._search_approximate(vectors, block_codes, k, exclude_seen=exclude_seen)
            else:
                scores = (vectors @ self.item_vectors.T).astype(np.float64)
                if exclude_seen:
                    self._mask_seen(scores, block_codes)
                columns, values = top_k(scores, k)
            item_ids = self.index.item_ids[np.maximum(columns, 0)]
            values = np.where(columns >= 0, values, -np.inf)
            frames.append(candidates_frame(user_array[start : start + step], item_ids, values, self.name))
        return pd.concat(frames, ignore_index=True)

    def _mask_seen(self, scores: np.ndarray, codes: np.ndarray) -> None:
        known = np.flatnonzero(codes >= 0)
        if len(known) == 0:
            return
        seen = self.index.matrix[codes[known]]
        rows = known[np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))]
        scores[rows, seen.indices] = -np.inf

    def _search_approximate(
        self, vectors: np.ndarray, codes: np.ndarray, k: int, *, exclude_seen: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        extra = 0
        seen = None
        if exclude_seen and (codes >= 0).any():
            seen = self.index.matrix[np.maximum(codes, 0)]
            counts = np.diff(seen.indptr) * (codes >= 0)
            extra = int(counts.max())
        columns, values = self.ann.search(vectors, min(self.index.n_items, k + extra))
        if seen is not None:
            n = self.index.n_items
            seen_rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
            keep = codes[seen_rows] >= 0
            seen_keys = seen_rows[keep].astype(np.int64) * n + seen.indices[keep]
            keys = np.arange(len(codes), dtype=np.int64)[:, None] * n + columns
            hit = np.isin(keys, seen_keys) | (columns < 0)
            values = np.where(hit, -np.inf, values)
            order = np.argsort(-values, axis=1, kind="stable")
            columns = np.take_along_axis(columns, order, axis=1)
            values = np.take_along_axis(values, order, axis=1)
        return columns[:, :k], values[:, :k]

    def score_pairs(
        self, users: Sequence[Hashable], items: Sequence[Hashable], *, users_frame: pd.DataFrame | None = None
    ) -> np.ndarray:
        """Inner product of each (user, item) pair; nan for an item outside the catalogue."""
        users, items = list(users), list(items)
        unique_users, inverse = np.unique(np.asarray(pd.Series(users, dtype=object).astype(str)), return_inverse=True)
        first = pd.Series(range(len(users))).groupby(inverse).first().to_numpy()
        vectors = self.user_embeddings([users[i] for i in first], users_frame)[inverse]
        columns = pd.Index(self.index.item_ids).get_indexer(pd.Series(items, dtype=object))
        out = np.einsum("ij,ij->i", vectors, self.item_vectors[np.maximum(columns, 0)]).astype(np.float64)
        out[columns < 0] = np.nan
        return out

    # -- persistence -----------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": _FORMAT,
            "class": type(self).__name__,
            "config": self.config(),
            "user_ids": _json_ids(self.index.user_ids),
            "item_ids": _json_ids(self.index.item_ids),
            "user_encoder": self.user_encoder.to_dict(),
            "item_encoder": self.item_encoder.to_dict(),
            "history": self.history,
        }
        (directory / CONFIG_FILE).write_text(json.dumps(meta))
        torch.save(self.net.state_dict(), directory / STATE_FILE)
        np.savez(
            directory / ARRAYS_FILE,
            user_vectors=self.user_vectors,
            item_vectors=self.item_vectors,
            unknown_user_vector=self.unknown_user_vector,
            item_id_codes=self.item_id_codes,
        )
        sp.save_npz(directory / SEEN_FILE, self.index.matrix)
        if self.ann.approximate:
            self.ann.save(directory / ANN_DIR)

    @classmethod
    def load(cls, directory: Path) -> Self:
        directory = Path(directory)
        meta = json.loads((directory / CONFIG_FILE).read_text())
        if meta.get("format") != _FORMAT:
            raise ValueError(f"unknown two-tower format {meta.get('format')!r} in {directory}")
        model = cls(**meta["config"])
        model.user_encoder = SideEncoder.from_dict(meta["user_encoder"])
        model.item_encoder = SideEncoder.from_dict(meta["item_encoder"])
        model.history = meta.get("history", [])
        user_ids = np.array(meta["user_ids"], dtype=object)
        item_ids = np.array(meta["item_ids"], dtype=object)
        matrix = sp.load_npz(directory / SEEN_FILE).tocsr()
        model.index = InteractionIndex(user_ids, item_ids, matrix, {u: i for i, u in enumerate(user_ids)})
        net = model._build_net(len(user_ids), len(item_ids))
        net.load_state_dict(torch.load(directory / STATE_FILE, weights_only=True))
        net.eval()
        model.net = net
        with np.load(directory / ARRAYS_FILE, allow_pickle=False) as arrays:
            model.user_vectors = arrays["user_vectors"]
            model.item_vectors = arrays["item_vectors"]
            model.unknown_user_vector = arrays["unknown_user_vector"]
            model.item_id_codes = arrays["item_id_codes"]
        if (directory / ANN_DIR).exists():
            model.ann = InnerProductIndex.load(directory / ANN_DIR)
        else:
            model._build_index()
        return model


def _train_rows(frame: pd.DataFrame | None, ids: np.ndarray) -> pd.DataFrame | None:
    """`frame`'s rows in the order of `ids` (missing rows all-NaN), or None without a frame."""
    if frame is None:
        return None
    return frame.reindex(pd.Index(ids))


def _batched(embed: Callable[[torch.Tensor], torch.Tensor], n: int, step: int = 8192) -> np.ndarray:
    chunks = [embed(torch.arange(start, min(n, start + step))).numpy() for start in range(0, n, step)]
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, 0), dtype=np.float32)


def _json_ids(ids: np.ndarray) -> list[Any]:
    return [v.item() if isinstance(v, np.generic) else v for v in ids.tolist()]
