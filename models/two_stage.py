"""Two-stage recommender: several candidate generators, merged, re-ranked by a LightGBM model.

Ranker features are each source's rank and score relative to the user's best from that source,
plus simple statistics of the training interactions: item popularity (share of users, percentile, recent
share), the item's popularity while the user was active, user activity, rating means when there are
ratings, and how far the item's usage lies in time from the user's. All of them are scale-free (shares,
percentiles, fractions of the time span), so a ranker fitted on a smaller validation carve applies to
the generators refitted on the whole training set. Optionally the ranker starts from a z-score blend of
the generators (`base_weights`) and learns corrections to it.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Self

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.generators.base import CANDIDATE_COLUMNS, ScoringGenerator
from models.generators.blend import BlendGenerator
from models.generators.merge import merge_candidates

DEFAULT_PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [10],
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_threads": 2,
    "deterministic": True,
    "force_row_wise": True,
    "verbose": -1,
}


class InteractionStatistics:
    """User and item statistics of a training interaction set, and their features for (user, item) pairs."""

    def __init__(self, interactions: pd.DataFrame) -> None:
        ts = interactions["timestamp"].to_numpy(dtype=np.float64)
        self.t_min, self.span = ts.min(), max(ts.max() - ts.min(), 1.0)
        frame = interactions.assign(_t=(ts - self.t_min) / self.span)
        n_users = frame["user_id"].nunique()
        items = frame.groupby("item_id").agg(
            item_users=("user_id", "size"), item_t_mean=("_t", "mean"), item_t_first=("_t", "min")
        )
        items["item_share"] = items.pop("item_users") / n_users
        items["item_pct"] = items["item_share"].rank(pct=True)
        recent = frame[frame["_t"] >= 0.9]
        items["item_recent_share"] = (recent.groupby("item_id").size() / max(len(recent), 1)).reindex(items.index)
        items["item_recent_share"] = items["item_recent_share"].fillna(0.0)
        users = frame.groupby("user_id").agg(user_count=("item_id", "size"), user_t_first=("_t", "min"))
        users["user_t_last"] = frame.groupby("user_id")["_t"].max()
        users["user_t_mean"] = frame.groupby("user_id")["_t"].mean()
        users["user_pct"] = users.pop("user_count").rank(pct=True)
        users["user_mean_item_share"] = (
            frame[["user_id", "item_id"]]
            .join(items["item_share"], on="item_id")
            .groupby("user_id")["item_share"]
            .mean()
        )
        if "rating" in frame and frame["rating"].notna().any():
            items["item_mean_rating"] = frame.groupby("item_id")["rating"].mean()
            users["user_mean_rating"] = frame.groupby("user_id")["rating"].mean()
        self.items, self.users = items, users
        # Sorted (item, time) keys: the item's usage inside any time window by two binary searches.
        item_codes = pd.Index(items.index).get_indexer(frame["item_id"])
        self._keys = np.sort(item_codes * 2.0 + frame["_t"].to_numpy())  # _t in [0, 1], so items never overlap
        self._t = np.sort(frame["_t"].to_numpy())

    def features(self, pairs: pd.DataFrame) -> pd.DataFrame:
        out = pairs.join(self.items, on="item_id").join(self.users, on="user_id")
        codes = pd.Index(self.items.index).get_indexer(out["item_id"]).astype(np.float64)
        first, last = out["user_t_first"].to_numpy(), out["user_t_last"].to_numpy()
        in_window = np.searchsorted(self._keys, codes * 2 + last, side="right") - np.searchsorted(
            self._keys, codes * 2 + first, side="left"
        )
        window_total = np.searchsorted(self._t, last, side="right") - np.searchsorted(self._t, first, side="left")
        known = (codes >= 0) & np.isfinite(first)
        out["item_window_share"] = np.where(known, in_window / np.maximum(window_total, 1), np.nan)
        out["time_gap"] = (out["item_t_mean"] - out["user_t_mean"]).abs()
        out["item_after_user"] = out["item_t_first"] - out["user_t_last"]
        out["share_vs_user"] = out["item_share"] / out["user_mean_item_share"]
        if "item_mean_rating" in out:
            out["rating_gap"] = out["item_mean_rating"] - out["user_mean_rating"]
        return out


class TwoStageRanker:
    """Candidates from every generator (top `per_source` each), merged and ranked by LightGBM.

    With `base_weights` (generator name → weight), the z-score blend of those generators is one more
    candidate source and the ranker's starting point: its score, mapped to log-odds by a logistic fit on
    the training candidates, is LightGBM's initial score, so the trees learn only what the blend misses
    (and early stopping at a few rounds leaves the blend's order).
    """

    name = "two_stage"

    def __init__(
        self,
        generators: Sequence[ScoringGenerator],
        *,
        per_source: int = 50,
        params: dict[str, Any] | None = None,
        max_rounds: int = 600,
        base_weights: Mapping[str, float] | None = None,
        seed: int = 42,
    ) -> None:
        self.generators = list(generators)
        self.per_source, self.max_rounds, self.seed = per_source, max_rounds, seed
        self.params = {**DEFAULT_PARAMS, **(params or {}), "seed": seed}
        self.base_weights = {name: w for name, w in (base_weights or {}).items() if w > 0}
        self.base: BlendGenerator | None = None
        self.base_logit = (1.0, 0.0)  # log-odds = a × base score + b

    def fit_generators(self, interactions: pd.DataFrame, items: pd.DataFrame | None = None) -> Self:
        """(Re)fit every generator and the statistics; the ranker, once trained, is kept."""
        for generator in self.generators:
            generator.fit(interactions, items)
        self.statistics = InteractionStatistics(interactions)
        if self.base_weights:
            blended = [g for g in self.generators if g.name in self.base_weights]
            self.base = BlendGenerator(blended, [self.base_weights[g.name] for g in blended])
            self.base.index = blended[0].index
        return self

    def _sources(self) -> list[ScoringGenerator]:
        return [*self.generators, *([self.base] if self.base is not None else [])]

    def candidates(self, users: Sequence[Hashable], *, exclude_seen: bool = True) -> pd.DataFrame:
        frames = [g.recommend(users, self.per_source, exclude_seen=exclude_seen) for g in self._sources()]
        merged = merge_candidates(frames, fill_from=self._sources())
        for generator in self._sources():
            score = merged[f"{generator.name}_score"]
            best = merged.groupby("user_id")[f"{generator.name}_score"].transform("max")
            merged[f"{generator.name}_relative"] = score / best.where(best.abs() > 1e-12)
        return self.statistics.features(merged).sort_values("user_id", kind="stable").reset_index(drop=True)

    def feature_names(self, frame: pd.DataFrame) -> list[str]:
        # Raw scores grow with the data's density, so they would not carry from a carve to the full set.
        return [c for c in frame.columns if c not in ("user_id", "item_id", "label") and not c.endswith("_score")]

    def labelled_candidates(
        self, history: pd.DataFrame, held_out: pd.DataFrame, items: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """Fit the generators on `history`; candidates of `held_out`'s users, label 1 when held out."""
        self.fit_generators(history, items)
        frame = self.candidates(pd.unique(held_out["user_id"]).tolist())
        positives = held_out[["user_id", "item_id"]].drop_duplicates().assign(label=1.0)
        return frame.merge(positives, on=["user_id", "item_id"], how="left").fillna({"label": 0.0})

    def fit_ranker(
        self, carves: Sequence[tuple[pd.DataFrame, pd.DataFrame]], items: pd.DataFrame | None = None
    ) -> Self:
        """Train the ranker on (history, held-out) carves of the training data, never on test data.

        Each carve gives one labelled candidate set (its users' groups kept apart per carve). The number of
        boosting rounds is chosen by early stopping on a fifth of the users, then the model is trained
        again on all of them with that many rounds. Call `fit_generators` on the whole training set after.
        """
        frames = []
        for number, (history, held_out) in enumerate(carves):
            frame = self.labelled_candidates(history, held_out, items)
            frames.append(frame.assign(_group=frame["user_id"].astype(str) + f"#{number}"))
        frame = pd.concat(frames, ignore_index=True)
        self.features = self.feature_names(frame.drop(columns="_group"))
        if self.base is not None:
            self.base_logit = _logistic_fit(self._base_scores(frame), frame["label"].to_numpy())
        users = pd.unique(frame["user_id"])
        rng = np.random.default_rng(self.seed)
        held = rng.choice(users, size=max(1, len(users) // 5), replace=False)
        in_valid = frame["user_id"].isin(held).to_numpy()  # a user's every carve on one side
        booster = lgb.train(
            self.params,
            self._dataset(frame[~in_valid]),
            num_boost_round=self.max_rounds,
            valid_sets=[self._dataset(frame[in_valid])],
            callbacks=[lgb.early_stopping(40, verbose=False)],
        )
        self.best_rounds = max(1, booster.best_iteration)
        self.valid_ndcg = float(booster.best_score["valid_0"]["ndcg@10"])
        self.booster = lgb.train(self.params, self._dataset(frame), num_boost_round=self.best_rounds)
        return self

    def _base_scores(self, frame: pd.DataFrame) -> np.ndarray:
        score = frame[f"{self.base.name}_score"].to_numpy(dtype=np.float64) if self.base else np.zeros(len(frame))
        return np.where(np.isfinite(score), score, np.nanmin(score) if np.isfinite(score).any() else 0.0)

    def _init_scores(self, frame: pd.DataFrame) -> np.ndarray | None:
        if self.base is None:
            return None
        a, b = self.base_logit
        return a * self._base_scores(frame) + b

    def _dataset(self, frame: pd.DataFrame) -> lgb.Dataset:
        sizes = frame.groupby("_group", sort=False).size().to_numpy()
        return lgb.Dataset(
            frame[self.features],
            label=frame["label"],
            group=sizes,
            init_score=self._init_scores(frame),
            free_raw_data=False,
        )

    def recommend(self, users: Sequence[Hashable], k: int, *, exclude_seen: bool = True) -> pd.DataFrame:
        frame = self.candidates(users, exclude_seen=exclude_seen)
        if frame.empty:
            return pd.DataFrame(columns=CANDIDATE_COLUMNS)
        raw = self.booster.predict(frame[self.features], num_threads=self.params["num_threads"], raw_score=True)
        init = self._init_scores(frame)
        frame["score"] = raw if init is None else raw + init
        frame = frame.sort_values(["user_id", "score"], ascending=[True, False], kind="stable")
        frame["rank"] = frame.groupby("user_id").cumcount() + 1
        top = frame[frame["rank"] <= k]
        return top.assign(source=self.name)[CANDIDATE_COLUMNS].reset_index(drop=True)


def _logistic_fit(x: np.ndarray, y: np.ndarray, *, iterations: int = 25) -> tuple[float, float]:
    """(a, b) of P(y = 1) = sigmoid(a x + b) by Newton's method (a one-feature logistic regression)."""
    a, b = 0.0, float(np.log(max(y.mean(), 1e-6) / max(1.0 - y.mean(), 1e-6)))
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(a * x + b)))
        w = p * (1.0 - p) + 1e-9
        gradient = np.array([np.sum((p - y) * x), np.sum(p - y)])
        hessian = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]]) + 1e-6 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        a, b = a - float(step[0]), b - float(step[1])
        if np.abs(step).max() < 1e-8:
            break
    return a, b
