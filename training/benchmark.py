"""Benchmark every candidate generator and the two-stage model on an interactions file.

Only the training part is ever used to choose anything. It is carved again with the same protocol into a
history and a validation part; each generator's hyperparameters are picked from a small grid by NDCG@k
on validation; the two-stage ranker is trained on the candidates of four fifths of the validation users
and the best model is picked on the remaining fifth. Then every model is refitted on the whole training
part with the chosen parameters and measured once on the test part (items seen in training removed).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.generators import EASEGenerator, PopularityGenerator, RP3betaGenerator, ScoringGenerator
from models.generators.factors import ALSGenerator
from models.two_stage import TwoStageRanker
from training.interactions import Format, Protocol, load_interactions, split_per_user
from training.ranking_metrics import topk_metrics

Progress = Callable[[str, int, int], None]

# Small grids: each point is one fit on the history carve (about a second on 100k interactions).
GRIDS: dict[str, list[dict[str, Any]]] = {
    "popularity": [{"half_life_days": h} for h in (None, 30.0, 180.0)],
    "ease": [{"l2": v} for v in (100.0, 250.0, 500.0, 1000.0, 2000.0)],
    "rp3beta": [{"alpha": a, "beta": b} for a in (0.8, 1.0) for b in (0.3, 0.5, 0.7)],
    "als": [{"factors": f, "regularization": r} for f in (32, 64) for r in (5.0, 20.0)],
}
# Chosen on the validation carve of the (real) MovieLens-100K training part, among LambdaRank with default
# trees, LambdaRank with these trees, and binary logloss with these trees.
TWO_STAGE_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "num_leaves": 15,
    "learning_rate": 0.03,
    "min_data_in_leaf": 200,
    "feature_fraction": 0.7,
}
PER_SOURCE = 50
METRIC_NAMES = ("ndcg", "precision", "recall", "map")


def make_generator(family: str, params: Mapping[str, Any], *, seed: int) -> ScoringGenerator:
    if family == "popularity":
        return PopularityGenerator(**params)
    if family == "ease":
        return EASEGenerator(**params)
    if family == "rp3beta":
        return RP3betaGenerator(**params)
    if family == "als":
        return ALSGenerator(**params, seed=seed)
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


def validation_carve(train: pd.DataFrame, protocol: Protocol, *, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(history, validation) from the training part alone, with the test split's own protocol."""
    return split_per_user(train, protocol, seed=seed + 1)


def select_hyperparameters(
    history: pd.DataFrame, validation: pd.DataFrame, *, k: int, seed: int, progress: Progress | None = None
) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    """Per generator family, the grid point with the best NDCG@k on validation, and that NDCG."""
    chosen: dict[str, dict[str, Any]] = {}
    scores: dict[str, float] = {}
    total, done = sum(len(g) for g in GRIDS.values()), 0
    for family, grid in GRIDS.items():
        best: tuple[float, dict[str, Any]] | None = None
        for params in grid:
            value = _ndcg(make_generator(family, params, seed=seed).fit(history), validation, k)
            if best is None or value > best[0]:
                best = (value, params)
            done += 1
            if progress:
                progress(f"tuning {family}", done, total)
        assert best is not None
        scores[family], chosen[family] = best[0], dict(best[1])
    return chosen, scores


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
    history, validation = validation_carve(train, protocol, seed=seed)
    chosen, _ = select_hyperparameters(history, validation, k=k, seed=seed, progress=progress)
    seconds["tune generators"] = time.perf_counter() - started

    started = time.perf_counter()
    if progress:
        progress("training the two-stage ranker", 0, 1)
    val_users = pd.unique(validation["user_id"])
    rng = np.random.default_rng(seed)
    selection_users = set(rng.choice(val_users, size=max(1, len(val_users) // 5), replace=False).tolist())
    for_selection = validation["user_id"].isin(selection_users)
    generators = [make_generator(family, chosen[family], seed=seed) for family in GRIDS]
    two_stage = TwoStageRanker(generators, per_source=PER_SOURCE, params=TWO_STAGE_PARAMS, seed=seed)
    two_stage.fit_ranker([(history, validation[~for_selection])])
    chosen[two_stage.name] = {"per_source": PER_SOURCE, **TWO_STAGE_PARAMS, "rounds": two_stage.best_rounds}
    # The generators are now fitted on the history carve: compare every model on the selection users.
    models: dict[str, Any] = {g.name: g for g in generators} | {two_stage.name: two_stage}
    selection = validation[for_selection]
    val_ndcg = {name: _ndcg(model, selection, k) for name, model in models.items()}
    best = max(val_ndcg, key=lambda name: val_ndcg[name])
    seconds["train two-stage and select"] = time.perf_counter() - started

    started = time.perf_counter()
    if progress:
        progress("refitting on the training part", 0, 1)
    two_stage.fit_generators(train)  # refits the same generator objects the single models are
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
