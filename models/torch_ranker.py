"""A PyTorch learning-to-rank model over the same candidate feature frames the LightGBM ranker reads.

Frames hold one row per (request_id, item_id) with a graded `label` and feature columns; NaN is a missing
value (a cold user has no user features, a new item no usage features). Inputs:
- numeric columns standardised with the training rows' mean and deviation, missing values set to 0 plus a
  missing indicator per column, so "unknown" is a value the network can learn from;
- categorical columns as embeddings over the levels seen in training (sorted, as `FeatureSpec` freezes
  them); an unknown or missing level is index 0.
The network is an MLP (concatenated inputs -> hidden layers -> one score). Loss over request groups:
`listwise` (softmax cross-entropy against the groups' gains 2**label - 1, ListNet top-1) or `pairwise`
(RankNet logistic loss over the pairs of different labels in a group). Training stops early on the mean
validation NDCG@10 (gains 2**label - 1, groups without a positive left out, as `training.evaluate`), and
keeps the best epoch's weights.

Persistence: `torch.save(state_dict)` and JSON, no pickle. Pure model code: imports no project package.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from models.torch_hooks import TrainHooks

CONFIG_FILE = "torch_ranker.json"
STATE_FILE = "torch_ranker_state.pt"
_FORMAT = 1

DEFAULT_PARAMS: dict[str, Any] = {
    "loss": "listwise",  # or "pairwise"
    "hidden": [64, 32],
    "dropout": 0.1,
    "lr": 3e-3,
    "weight_decay": 1e-5,
    "epochs": 60,
    "patience": 8,
    "batch_groups": 64,
    "embedding_dim": 8,
    "threads": 1,
    "seed": 7,
}


@dataclass
class InputLayout:
    """Which columns are numeric (mean, std) and which categorical (levels, index 0 = unknown/missing)."""

    names: list[str]
    numeric: list[str] = field(default_factory=list)
    means: list[float] = field(default_factory=list)
    stds: list[float] = field(default_factory=list)
    levels: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def fit(cls, frame: pd.DataFrame, *, features: Sequence[str], categorical: Sequence[str]) -> InputLayout:
        unknown = [c for c in categorical if c not in features]
        if unknown:
            raise ValueError(f"categorical columns not among the features: {unknown}")
        layout = cls(names=list(features))
        for name in features:
            if name in categorical:
                layout.levels[name] = sorted({str(v) for v in frame[name].dropna().unique()})
                continue
            values = pd.to_numeric(frame[name], errors="coerce").astype(np.float64)
            mean = float(values.mean()) if values.notna().any() else 0.0
            std = float(values.std()) if values.notna().sum() > 1 else 0.0
            layout.numeric.append(name)
            layout.means.append(mean if math.isfinite(mean) else 0.0)
            layout.stds.append(std if std > 0 and math.isfinite(std) else 1.0)
        return layout

    def encode(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(dense float32: standardised numerics then missing indicators, int64 codes per categorical)."""
        missing = [c for c in self.names if c not in frame.columns]
        if missing:
            raise KeyError(f"model input lacks feature columns: {missing}")
        n = len(frame)
        block = frame[list(self.numeric)]
        if all(pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_bool_dtype(t) for t in block.dtypes):
            # Serving's frames are one float block: one copy, not a conversion per column (2 of ~8 ms a request).
            values = block.to_numpy(dtype=np.float64, na_value=np.nan)
        else:  # not empty here: a frame without numeric features takes the branch above
            values = np.column_stack(
                [pd.to_numeric(block[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan) for c in block]
            )
        absent = ~np.isfinite(values)
        scaled = (values - np.asarray(self.means, dtype=np.float64)) / np.asarray(self.stds, dtype=np.float64)
        dense = np.concatenate([np.where(absent, 0.0, scaled), absent], axis=1).astype(np.float32)
        codes = np.zeros((n, len(self.levels)), dtype=np.int64)
        for j, (name, levels) in enumerate(self.levels.items()):
            codes[:, j] = pd.Categorical(frame[name].astype("string"), categories=levels).codes + 1
        return dense, codes


class RankerNet(nn.Module):
    def __init__(
        self, *, n_dense: int, level_counts: Sequence[int], embedding_dim: int, hidden: Sequence[int], dropout: float
    ):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(n + 1, min(embedding_dim, n + 1)) for n in level_counts)
        width = n_dense + sum(min(embedding_dim, n + 1) for n in level_counts)
        layers: list[nn.Module] = []
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, dense: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        parts = [dense] + [embedding(codes[:, j]) for j, embedding in enumerate(self.embeddings)]
        return self.mlp(torch.cat(parts, dim=1)).squeeze(1)


@dataclass(frozen=True)
class _Groups:
    """Rows of each request group as a padded matrix (groups × longest group), -1 for padding."""

    rows: np.ndarray
    labels: np.ndarray  # float, same shape, 0 on padding

    @classmethod
    def of(cls, frame: pd.DataFrame) -> _Groups:
        codes, _ = pd.factorize(frame["request_id"], sort=False)
        order = np.argsort(codes, kind="stable")
        sizes = np.bincount(codes)
        width = int(sizes.max()) if len(sizes) else 0
        starts = np.r_[0, np.cumsum(sizes)[:-1]]
        position = np.arange(len(order)) - np.repeat(starts, sizes)
        rows = np.full((len(sizes), width), -1, dtype=np.int64)
        rows[codes[order], position] = order
        labels = np.zeros(rows.shape, dtype=np.float64)
        values = frame["label"].to_numpy(dtype=np.float64)
        labels[rows >= 0] = values[rows[rows >= 0]]
        return cls(rows, labels)

    def with_positive(self) -> _Groups:
        keep = self.labels.max(axis=1, initial=0.0) > 0
        return _Groups(self.rows[keep], self.labels[keep])


def ndcg_at_k(groups: _Groups, scores: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k over groups with a positive label (gains 2**label - 1)."""
    positive = groups.with_positive()
    if len(positive.rows) == 0:
        return float("nan")
    padded = np.where(positive.rows >= 0, scores[np.maximum(positive.rows, 0)], -np.inf)
    gains = np.power(2.0, positive.labels) - 1.0
    width = min(k, padded.shape[1])
    discount = 1.0 / np.log2(np.arange(2, width + 2))
    order = np.argsort(-padded, axis=1, kind="stable")[:, :width]
    dcg = (np.take_along_axis(gains, order, axis=1) * discount).sum(axis=1)
    ideal = (-np.sort(-gains, axis=1)[:, :width] * discount).sum(axis=1)
    return float(np.mean(dcg / ideal))


def _listwise_loss(scores: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    gains = torch.pow(2.0, labels) - 1.0
    target = gains / gains.sum(dim=1, keepdim=True).clamp(min=1e-12)
    log_p = torch.log_softmax(scores.masked_fill(~valid, float("-inf")), dim=1)
    return -(target * log_p.masked_fill(~valid, 0.0)).sum(dim=1).mean()


def _pairwise_loss(scores: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    better = (labels[:, :, None] > labels[:, None, :]) & valid[:, :, None] & valid[:, None, :]
    if not bool(better.any()):
        return scores.sum() * 0.0
    diff = scores[:, :, None] - scores[:, None, :]
    return F.softplus(-diff[better]).mean()


class TorchRanker:
    """An MLP ranker with a listwise or pairwise loss over request groups; `score(frame)` per row."""

    kind = "torch"  # the ranker kind packages record (models.recommender.RANKERS)

    def __init__(self) -> None:
        self.layout: InputLayout | None = None
        self.net: RankerNet | None = None
        self.params: dict[str, Any] = dict(DEFAULT_PARAMS)
        self.history: list[dict[str, float]] = []
        self.train_metrics: dict[str, Any] = {}  # what the runner that fitted it reported (Ray Train)
        self.best_epoch = 0
        self.valid_ndcg = float("nan")

    def _build(self) -> RankerNet:
        assert self.layout is not None
        return RankerNet(
            n_dense=2 * len(self.layout.numeric),
            level_counts=[len(v) for v in self.layout.levels.values()],
            embedding_dim=int(self.params["embedding_dim"]),
            hidden=[int(h) for h in self.params["hidden"]],
            dropout=float(self.params["dropout"]),
        )

    def fit(
        self,
        train_frame: pd.DataFrame,
        valid_frame: pd.DataFrame,
        *,
        features: Sequence[str],
        categorical: Sequence[str] = (),
        params: Mapping[str, Any] | None = None,
        hooks: TrainHooks | None = None,
    ) -> Self:
        """Train on `train_frame`'s groups, keep the epoch of best validation NDCG@10."""
        self.params = {**DEFAULT_PARAMS, **(params or {})}
        if self.params["loss"] not in ("listwise", "pairwise"):
            raise ValueError(f"loss must be listwise or pairwise, not {self.params['loss']!r}")
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(max(1, int(self.params["threads"])))
        try:
            self._fit(train_frame, valid_frame, list(features), list(categorical), hooks or TrainHooks())
        finally:
            torch.set_num_threads(previous_threads)
        return self

    def _fit(
        self, train: pd.DataFrame, valid: pd.DataFrame, features: list[str], categorical: list[str], hooks: TrainHooks
    ) -> None:
        torch.manual_seed(int(self.params["seed"]))
        rng = np.random.default_rng(int(self.params["seed"]))
        train_groups = _Groups.of(train).with_positive()
        valid_groups = _Groups.of(valid)
        if len(train_groups.rows) == 0 or len(valid_groups.with_positive().rows) == 0:
            raise ValueError("no request group with a positive label to train or validate on")
        used = np.unique(train_groups.rows[train_groups.rows >= 0])
        self.layout = InputLayout.fit(train.iloc[used], features=features, categorical=categorical)
        dense, codes = (torch.from_numpy(a) for a in self.layout.encode(train))
        valid_dense, valid_codes = (torch.from_numpy(a) for a in self.layout.encode(valid))
        net = self._build()
        self.net = net
        trained = hooks.wrap_module(net) if hooks.wrap_module is not None else net
        optimiser = torch.optim.Adam(
            trained.parameters(), lr=float(self.params["lr"]), weight_decay=float(self.params["weight_decay"])
        )
        loss_fn = _listwise_loss if self.params["loss"] == "listwise" else _pairwise_loss
        n_groups = len(train_groups.rows)
        per_worker = max(1, n_groups // max(1, hooks.world_size))
        batch = int(self.params["batch_groups"])
        best_state: dict[str, torch.Tensor] | None = None
        best, best_epoch, waited = -np.inf, 0, 0
        self.history = []
        for epoch in range(int(self.params["epochs"])):
            trained.train()
            order = rng.permutation(n_groups)
            if hooks.world_size > 1:
                order = order[: per_worker * hooks.world_size][hooks.rank :: hooks.world_size]
            total = 0.0
            for start in range(0, len(order), batch):
                picked = order[start : start + batch]
                rows = train_groups.rows[picked]
                valid_mask = torch.from_numpy(rows >= 0)
                flat = torch.from_numpy(np.maximum(rows, 0).ravel())
                scores = trained(dense[flat], codes[flat]).view(rows.shape)
                loss = loss_fn(scores, torch.from_numpy(train_groups.labels[picked]).float(), valid_mask)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(picked)
            net.eval()
            with torch.no_grad():
                valid_scores = net(valid_dense, valid_codes).numpy().astype(np.float64)
            score = ndcg_at_k(valid_groups, valid_scores, 10)
            metrics = {"epoch": float(epoch + 1), "loss": total / max(1, len(order)), "valid_ndcg@10": score}
            self.history.append(metrics)
            if hooks.on_epoch is not None:
                hooks.on_epoch(epoch, metrics)
            if score > best:
                best, best_epoch, waited = score, epoch + 1, 0
                best_state = copy.deepcopy(net.state_dict())
            else:
                waited += 1
                if waited >= int(self.params["patience"]):
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        self.best_epoch, self.valid_ndcg = best_epoch, float(best)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """One relevance score per row (higher ranks first)."""
        if self.net is None or self.layout is None:
            raise RuntimeError("the torch ranker is not fitted: fit it or load it")
        if len(frame) == 0:
            return np.empty(0, dtype=np.float64)
        dense, codes = self.layout.encode(frame)
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(max(1, int(self.params["threads"])))
        try:
            with torch.no_grad():
                return self.net(torch.from_numpy(dense), torch.from_numpy(codes)).numpy().astype(np.float64)
        finally:
            torch.set_num_threads(previous_threads)

    def contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows × features: gradient × input of the score, with inputs measured from the training mean
        (standardised 0) and a feature's missing indicator and embedding counted as the feature's own."""
        if self.net is None or self.layout is None:
            raise RuntimeError("the torch ranker is not fitted: fit it or load it")
        layout = self.layout
        out = np.zeros((len(frame), len(layout.names)))
        if len(frame) == 0:
            return out
        dense_np, codes_np = layout.encode(frame)
        dense = torch.from_numpy(dense_np).requires_grad_(True)
        codes = torch.from_numpy(codes_np)
        embedded = [emb(codes[:, j]) for j, emb in enumerate(self.net.embeddings)]
        for e in embedded:
            e.retain_grad()
        score = self.net.mlp(torch.cat([dense, *embedded], dim=1)).squeeze(1)
        score.sum().backward()  # rows are independent: each row's gradient is its own
        assert dense.grad is not None
        share = (dense.grad * dense).detach().numpy()
        position = {name: j for j, name in enumerate(layout.names)}
        width = len(layout.numeric)
        for j, name in enumerate(layout.numeric):
            out[:, position[name]] = share[:, j] + share[:, width + j]
        for j, name in enumerate(layout.levels):
            grad = embedded[j].grad
            assert grad is not None
            out[:, position[name]] = (grad * embedded[j]).sum(dim=1).detach().numpy()
        return out

    def explain(self, frame: pd.DataFrame, *, relative: bool = False) -> list[str]:
        """Per row, the feature with the largest positive gradient × input ("" when none is positive)."""
        from models.recommender import top_feature

        if len(frame) == 0:
            return []
        return top_feature(self.contributions(frame), self.feature_names, relative=relative)

    @property
    def feature_names(self) -> tuple[str, ...]:
        if self.layout is None:
            raise RuntimeError("the torch ranker is not fitted")
        return tuple(self.layout.names)

    def save(self, directory: Path) -> None:
        if self.net is None or self.layout is None:
            raise RuntimeError("the torch ranker is not fitted")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": _FORMAT,
            "class": type(self).__name__,
            "params": self.params,
            "layout": asdict(self.layout),
            "history": self.history,
            "best_epoch": self.best_epoch,
            "valid_ndcg": self.valid_ndcg,
        }
        (directory / CONFIG_FILE).write_text(json.dumps(meta))
        torch.save(self.net.state_dict(), directory / STATE_FILE)

    @classmethod
    def load(cls, directory: Path) -> Self:
        directory = Path(directory)
        meta = json.loads((directory / CONFIG_FILE).read_text())
        if meta.get("format") != _FORMAT:
            raise ValueError(f"unknown torch ranker format {meta.get('format')!r} in {directory}")
        model = cls()
        model.params = meta["params"]
        model.layout = InputLayout(**meta["layout"])
        model.history = meta["history"]
        model.best_epoch = int(meta["best_epoch"])
        model.valid_ndcg = float(meta["valid_ndcg"])
        net = model._build()
        net.load_state_dict(torch.load(directory / STATE_FILE, weights_only=True))
        net.eval()
        model.net = net
        return model
