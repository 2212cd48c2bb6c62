"""Benchmark every candidate generator, their blend and the two-stage model on an interactions file.

Only the training part is ever used to choose anything. It is carved again, with the same kind of protocol
holding out half the test part's share, into histories and validation parts (two carves for a random
split); each generator's hyperparameters are picked from a small grid by mean NDCG@k on validation.
Four fifths of the users then train the blend's weights and the two-stage ranker, and the best model
is picked on the remaining fifth. Then every model is refitted on the whole
training part with the chosen parameters and measured once on the test part (items seen in training
removed).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.generators import EASEGenerator, PopularityGenerator, RP3betaGenerator, ScoringGenerator
from models.generators.base import top_k
from models.generators.blend import BlendGenerator, combine, tune_weights
from models.generators.factors import ALSGenerator
from models.generators.spectral import SpectralGenerator
from models.two_stage import TwoStageRanker
from training.interactions import Format, Protocol, load_interactions, split_per_user
from training.ranking_metrics import topk_metrics

Progress = Callable[[str, int, int], None]

# Small grids: each point is one fit on the history carve (about a second on 100k interactions). `window`
# is the sequence-aware Gram's reach in positions of a user's history (None: plain co-occurrence).
GRIDS: dict[str, list[dict[str, Any]]] = {
    "popularity": [{"half_life_days": h} for h in (None, 30.0, 180.0)],
    "ease": [{"l2": v} for v in (250.0, 500.0, 1000.0)]
    + [{"l2": v, "window": w} for w in (3.0, 10.0, 30.0) for v in (50.0, 100.0, 200.0)],
    "rp3beta": [{"alpha": a, "beta": b} for a in (0.8, 1.0) for b in (0.3, 0.5)],
    "als": [{"factors": 32, "regularization": 5.0}, {"factors": 64, "regularization": 20.0}],
    "spectral": [
        {"factors": f, "normalisation": n, "window": w}
        for w in (None, 10.0, 30.0)
        for f in (16, 32)
        for n in (0.5, 0.75)
    ],
}
# Binary logloss: the trees add log-odds to the blend's calibrated score (the ranker's init score). The tree
# sizes were chosen on the validation carve of the (real) MovieLens-100K training part, among LambdaRank
# with default trees, LambdaRank with these trees, and binary logloss with these trees (before the blend).
TWO_STAGE_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "num_leaves": 15,
    "learning_rate": 0.03,
    "min_data_in_leaf": 200,
    "feature_fraction": 0.7,
}
PER_SOURCE = 50
METRIC_NAMES = ("ndcg", "precision", "recall", "map")
# The blend's weights are tuned on at most this many users (their dense score rows are held in memory).
BLEND_TUNING_USERS = 3000
# Validation carves of a randomly split training part (see `validation_carves`).
RANDOM_CARVES = 2


def make_generator(family: str, params: Mapping[str, Any], *, seed: int) -> ScoringGenerator:
    if family == "popularity":
        return PopularityGenerator(**params)
    if family == "ease":
        return EASEGenerator(**params)
    if family == "rp3beta":
        return RP3betaGenerator(**params)
    if family == "als":
        return ALSGenerator(**params, seed=seed)
    if family == "spectral":
        return SpectralGenerator(**params)
    raise ValueError(f"unknown generator family {family!r}")


@dataclass
class BenchmarkResult:
    table: pd.DataFrame  # one row per model: ndcg@k, precision@k, recall@k, map@k, coverage
    params: dict[str, dict[str, Any]]  # chosen hyperparameters per model
    validation: dict[str, float]  # NDCG@k per model on the selection users of the validation carve
    best: str  # the model picked on validation
    recs: pd.DataFrame  # user_id, item_id, rank, score: the best model's top-k of every test user
    seconds: dict[str, float] = field(default_factory=dict)


def _ndcg(model: Any, truth: pd.DataFrame, k: int) -> float:
    recs = model.recommend(pd.unique(truth["user_id"]).tolist(), k)
    return topk_metrics(recs, truth, k=k)[f"ndcg@{k}"]


def validation_carves(train: pd.DataFrame, protocol: Protocol, *, seed: int) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """(history, validation) pairs from the training part alone, by the test split's kind of protocol.

    The validation part is half as large a share as the test part (random:0.75 → random:0.875), so each
    history is nearly the whole training part and what is chosen on it carries over to the refit on the
    whole training part (with a quarter held out, the histories are so much sparser that smoother models
    and popularity look better than they are). A random protocol gives `RANDOM_CARVES` carves of different
    seeds, to halve the noise of the choices; time and leave-last-out splits give one carve.
    """
    if protocol.kind == "leave-last-out":
        return [split_per_user(train, protocol, seed=seed + 1)]
    carve = Protocol(protocol.kind, 1.0 - (1.0 - protocol.train_fraction) / 2.0)
    count = RANDOM_CARVES if protocol.kind == "random" else 1
    return [split_per_user(train, carve, seed=seed + 1 + n) for n in range(count)]


def validation_cutoff(protocol: Protocol, k: int) -> int:
    """The cut-off of validation NDCG standing for the test's NDCG@k.

    A validation part holds half the test part's share of each user's interactions (`validation_carves`),
    so a user's top k on validation covers twice as large a share of their relevant items as on test;
    NDCG at 2k puts the same share of them within reach (and, with more hits per list, is less noisy).
    Leave-last-out holds out one item either way.
    """
    return k if protocol.kind == "leave-last-out" else 2 * k


def select_hyperparameters(
    carves: Sequence[tuple[pd.DataFrame, pd.DataFrame]],
    *,
    k: int,
    seed: int,
    progress: Progress | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, float], list[dict[str, ScoringGenerator]]]:
    """Per generator family, the grid point with the best mean NDCG@k over the carves' validation parts,
    that NDCG, and per carve the generator of that point fitted on the carve's history."""
    chosen: dict[str, dict[str, Any]] = {}
    scores: dict[str, float] = {}
    fitted: list[dict[str, ScoringGenerator]] = [{} for _ in carves]
    total, done = sum(len(g) for g in GRIDS.values()), 0
    for family, grid in GRIDS.items():
        best: tuple[float, dict[str, Any], list[ScoringGenerator]] | None = None
        for params in grid:
            generators = [make_generator(family, params, seed=seed).fit(history) for history, _ in carves]
            value = float(np.mean([_ndcg(g, v, k) for g, (_, v) in zip(generators, carves, strict=True)]))
            if best is None or value > best[0]:
                best = (value, params, generators)
            done += 1
            if progress:
                progress(f"tuning {family}", done, total)
        assert best is not None
        scores[family], chosen[family] = best[0], dict(best[1])
        for per_carve, generator in zip(fitted, best[2], strict=True):
            per_carve[family] = generator
    return chosen, scores, fitted


def blend_weights(
    carves: Sequence[tuple[Mapping[str, ScoringGenerator], pd.DataFrame]], *, k: int, seed: int
) -> dict[str, float]:
    """Blend weights per generator family maximising the mean NDCG@k over carves, each carve giving the
    generators fitted on its history and the validation interactions to score."""
    names = list(carves[0][0])
    problems = []
    for generators, truth in carves:
        users = pd.unique(truth["user_id"])
        if len(users) > BLEND_TUNING_USERS:
            users = np.random.default_rng(seed).choice(users, size=BLEND_TUNING_USERS, replace=False)
        probe = BlendGenerator([generators[n] for n in names], [1.0] * len(names))
        probe.index = generators[names[0]].index
        codes = probe.index.codes(list(users))
        blocks = probe.component_z_scores(codes)
        seen = probe.index.matrix[np.maximum(codes, 0)]
        rows = np.repeat(np.arange(len(codes)), np.diff(seen.indptr))
        keep = codes[rows] >= 0
        for z in blocks:  # seen items (of known users) never count as recommendations
            z[rows[keep], seen.indices[keep]] = np.nan
        problems.append((blocks, ScoreMatrixNDCG(users, probe.index.item_ids, truth, k)))

    def evaluate(weights: list[float]) -> float:
        return float(np.mean([ndcg(combine(blocks, weights)) for blocks, ndcg in problems]))

    weights, _ = tune_weights(len(names), evaluate)
    return dict(zip(names, weights, strict=True))


class ScoreMatrixNDCG:
    """NDCG@k (as `topk_metrics` computes it) of dense score rows, one per user, over a fixed catalogue."""

    def __init__(self, users: Sequence[Hashable], item_ids: np.ndarray, truth: pd.DataFrame, k: int) -> None:
        relevant = truth[["user_id", "item_id"]].drop_duplicates()
        relevant = relevant[relevant["user_id"].isin(set(pd.Index(users)))]
        rows = pd.Index(users).get_indexer(relevant["user_id"])
        n_relevant = np.bincount(rows, minlength=len(users))  # items outside the catalogue count too
        columns = pd.Index(item_ids).get_indexer(relevant["item_id"])
        self.relevant = np.zeros((len(users), len(item_ids)), dtype=bool)
        self.relevant[rows[columns >= 0], columns[columns >= 0]] = True
        discounts = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))
        self.ideal = np.where(n_relevant > 0, discounts[np.maximum(np.minimum(n_relevant, k), 1) - 1], np.nan)
        self.k = k

    def __call__(self, scores: np.ndarray) -> float:
        columns, values = top_k(np.where(np.isfinite(scores), scores, -np.inf), self.k)
        hits = np.take_along_axis(self.relevant, columns, axis=1) & np.isfinite(values)
        dcg = (hits / np.log2(np.arange(2, columns.shape[1] + 2))[None, :]).sum(axis=1)
        users = np.isfinite(self.ideal)  # every user with a held-out item counts
        return float(np.mean(dcg[users] / self.ideal[users]))


def run_benchmark(
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    protocol: Protocol,
    k: int = 10,
    seed: int = 42,
    progress: Progress | None = None,
) -> BenchmarkResult:
    """Tune on a carve of `train`, refit on `train`, measure every model on `test` (seen items removed)."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    carves = validation_carves(train, protocol, seed=seed)
    k_val = validation_cutoff(protocol, k)
    # A fifth of the users is kept apart to choose the best model: nothing else is tuned on them.
    users = pd.unique(train["user_id"])
    rng = np.random.default_rng(seed)
    selection_users = set(rng.choice(users, size=max(1, len(users) // 5), replace=False).tolist())
    tuning = [(history, validation[~validation["user_id"].isin(selection_users)]) for history, validation in carves]
    chosen, _, fitted = select_hyperparameters(tuning, k=k_val, seed=seed, progress=progress)
    seconds["tune generators"] = time.perf_counter() - started

    started = time.perf_counter()
    if progress:
        progress("tuning the blend and the two-stage ranker", 0, 1)
    weights = blend_weights([(f, v) for f, (_, v) in zip(fitted, tuning, strict=True)], k=k_val, seed=seed)
    blended = [family for family in GRIDS if weights[family] > 0]
    chosen["blend"] = {"weights": {f: weights[f] for f in blended}}
    generators = [make_generator(family, chosen[family], seed=seed) for family in GRIDS]
    two_stage = TwoStageRanker(
        generators, per_source=PER_SOURCE, params=TWO_STAGE_PARAMS, base_weights=weights, seed=seed
    )
    two_stage.fit_ranker(tuning)  # leaves its generators fitted on the last carve's history
    chosen[two_stage.name] = {"per_source": PER_SOURCE, **TWO_STAGE_PARAMS, "rounds": two_stage.best_rounds}
    # Every model fitted on each carve's history, compared on that carve's selection users (mean over carves).
    val_ndcg: dict[str, float] = {}
    for number in reversed(range(len(carves))):  # the two-stage's generators start on the last carve
        history, validation = carves[number]
        if number < len(carves) - 1:
            two_stage.fit_generators(history)
        blend = BlendGenerator([fitted[number][f] for f in blended], [weights[f] for f in blended])
        blend.index = fitted[number][blended[0]].index
        candidates: dict[str, Any] = {**fitted[number], blend.name: blend, two_stage.name: two_stage}
        selection = validation[validation["user_id"].isin(selection_users)]
        for name, model in candidates.items():
            val_ndcg[name] = val_ndcg.get(name, 0.0) + _ndcg(model, selection, k_val) / len(carves)
    best = max(val_ndcg, key=lambda name: val_ndcg[name])
    models: dict[str, Any] = {g.name: g for g in generators} | {blend.name: blend, two_stage.name: two_stage}
    seconds["blend two-stage and select"] = time.perf_counter() - started

    started = time.perf_counter()
    if progress:
        progress("refitting on the training part", 0, 1)
    two_stage.fit_generators(train)  # refits the same generator objects the single models are
    models[blend.name] = BlendGenerator(
        [make_generator(f, chosen[f], seed=seed) for f in blended], [weights[f] for f in blended]
    ).fit(train)
    n_items = two_stage.generators[0].index.n_items
    test_users = pd.unique(test["user_id"]).tolist()
    rows, recs = [], {}
    for i, (name, model) in enumerate(models.items()):
        recs[name] = model.recommend(test_users, k, exclude_seen=True)
        metrics = topk_metrics(recs[name], test, k=k, n_items=n_items)
        rows.append({"model": name, **{key: value for key, value in metrics.items() if key != "users"}})
        if progress:
            progress("measuring on the test part", i + 1, len(models))
    seconds["refit and test"] = time.perf_counter() - started
    table = pd.DataFrame(rows).set_index("model").sort_values(f"ndcg@{k}", ascending=False)
    table["validation_ndcg"] = pd.Series(val_ndcg)
    best_recs = recs[best][["user_id", "item_id", "rank", "score"]].reset_index(drop=True)
    return BenchmarkResult(table, chosen, val_ndcg, best, best_recs, seconds)


def write_outputs(result: BenchmarkResult, out: Path, *, meta: Mapping[str, Any]) -> dict[str, Path]:
    """metrics.csv, metrics.md, params.json and recs.csv under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("metrics.csv", "metrics.md", "params.json", "recs.csv")}
    result.table.to_csv(paths["metrics.csv"], float_format="%.4f")
    lines = [
        f"# fitrec benchmark: {meta.get('data', '')}",
        "",
        ", ".join(f"{key} {value}" for key, value in meta.items() if key != "data"),
        f"best model (chosen on validation): {result.best}",
        "",
        _markdown(result.table),
    ]
    paths["metrics.md"].write_text("\n".join(lines) + "\n")
    paths["params.json"].write_text(
        json.dumps(
            {
                "params": result.params,
                "validation_ndcg": result.validation,
                "seconds": result.seconds,
                "best": result.best,
                **meta,
            },
            indent=2,
            default=str,
        )
    )
    result.recs.to_csv(paths["recs.csv"], index=False)
    return paths


def _markdown(table: pd.DataFrame) -> str:
    header = "| model | " + " | ".join(table.columns) + " |"
    rule = "|---|" + "---|" * len(table.columns)
    body = [f"| {name} | " + " | ".join(f"{v:.4f}" for v in row) + " |" for name, row in table.iterrows()]
    return "\n".join([header, rule, *body])


def log_to_mlflow(result: BenchmarkResult, paths: Mapping[str, Path], out: Path, *, meta: Mapping[str, Any]) -> str:
    """One run in experiment `fitrec-benchmark` (MLFLOW_TRACKING_URI, or SQLite under `out`); its run id."""
    import mlflow

    from training.registry import ensure_experiment, git_commit, mlflow_metrics, tracking

    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(out / 'mlflow.db').resolve()}"
    with tracking(uri) as client:
        experiment_id = ensure_experiment(client, name="fitrec-benchmark", artifact_root=str(out / "mlartifacts"))
        tags = {"fitrec.kind": "benchmark", **({"git_commit": c} if (c := git_commit()) else {})}
        with mlflow.start_run(experiment_id=experiment_id, run_name="benchmark", tags=tags) as run:
            params = {
                f"{model}.{key}": value for model, chosen in result.params.items() for key, value in chosen.items()
            }
            mlflow.log_params(
                {key: str(value)[:6000] for key, value in {**meta, **params, "best": result.best}.items()}
            )
            metrics = {
                f"{model}_{column}": value for model, row in result.table.iterrows() for column, value in row.items()
            }
            metrics |= {f"seconds_{step.replace(' ', '_')}": value for step, value in result.seconds.items()}
            mlflow.log_metrics(mlflow_metrics(metrics))
            for path in paths.values():
                mlflow.log_artifact(str(path))
            return str(run.info.run_id)


@dataclass(frozen=True)
class BenchmarkRun:
    result: BenchmarkResult
    paths: dict[str, Path]
    run_id: str
    meta: dict[str, Any]


def benchmark_files(
    *,
    interactions: Path | None = None,
    train_file: Path | None = None,
    test_file: Path | None = None,
    format: Format = "csv",
    columns: Mapping[str, str | None] | None = None,
    protocol: str = "random:0.75",
    seed: int = 42,
    k: int = 10,
    out: Path,
    progress: Progress | None = None,
) -> BenchmarkRun:
    """Load (one file split by `protocol`, or a given train and test file), benchmark, write, log to MLflow."""
    started = time.perf_counter()
    parsed = Protocol.parse(protocol)
    load_args = dict(columns or {})
    if interactions is not None:
        frame = load_interactions(interactions, format=format, **load_args)  # type: ignore[arg-type]
        train, test = split_per_user(frame, parsed, seed=seed)
        data = str(interactions)
    elif train_file is not None and test_file is not None:
        train = load_interactions(train_file, format=format, **load_args)  # type: ignore[arg-type]
        test = load_interactions(test_file, format=format, **load_args)  # type: ignore[arg-type]
        data = f"{train_file} + {test_file}"
    else:
        raise ValueError("give --interactions FILE, or both --train FILE and --test FILE")
    # Items seen in training are never relevant: the protocol removes them from the test part too.
    test = test.merge(train[["user_id", "item_id"]], on=["user_id", "item_id"], how="left", indicator=True)
    test = test[test.pop("_merge") == "left_only"]
    result = run_benchmark(train, test, protocol=parsed, k=k, seed=seed, progress=progress)
    result.seconds["total"] = time.perf_counter() - started
    meta = {
        "data": data,
        "format": format,
        "protocol": str(parsed),
        "seed": seed,
        "k": k,
        "train_interactions": len(train),
        "test_interactions": len(test),
        "users": int(pd.concat([train["user_id"], test["user_id"]]).nunique()),
        "items": int(pd.concat([train["item_id"], test["item_id"]]).nunique()),
    }
    paths = write_outputs(result, out, meta=meta)
    run_id = log_to_mlflow(result, paths, out, meta=meta)
    return BenchmarkRun(result, paths, run_id, meta)
