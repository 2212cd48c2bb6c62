"""MLflow: log a ranking run (params, metrics, lineage, plots, the packaged model), register it, set aliases."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.pyfunc import PyFuncModel
from mlflow.tracking import MlflowClient

import models
from models.recommender import Recommender

CHAMPION = "champion"
MODEL_NAME_IN_RUN = "recommender"
# The packaged model needs only these at load time (pinned loosely; the serving image pins exactly).
MODEL_REQUIREMENTS = ["lightgbm>=4.3,<5", "pandas>=2.1,<3", "numpy>=1.26,<3", "mlflow>=3.17,<4"]


@contextmanager
def tracking(tracking_uri: str) -> Iterator[MlflowClient]:
    """Use `tracking_uri` for MLflow's fluent API inside the block, then restore what was set before."""
    from mlflow.tracking._tracking_service import utils as tracking_utils

    env_before = os.environ.get("MLFLOW_TRACKING_URI")
    set_before = tracking_utils._tracking_uri
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield MlflowClient(tracking_uri=tracking_uri)
    finally:
        mlflow.set_tracking_uri(set_before)  # type: ignore[arg-type]  # None unsets it, and the env var...
        if env_before is not None:  # ...which we restore if somebody else had set it.
            os.environ["MLFLOW_TRACKING_URI"] = env_before


def ensure_experiment(client: MlflowClient, *, name: str, artifact_root: str) -> str:
    """The experiment's id; a new one stores its artifacts under `artifact_root`/<name>."""
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return str(existing.experiment_id)
    location = artifact_root if "://" in artifact_root else Path(artifact_root).resolve().as_uri()
    return str(client.create_experiment(name, artifact_location=f"{location.rstrip('/')}/{name}"))


def git_commit() -> str | None:
    """The commit of the source tree that trained the model, if it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@dataclass(frozen=True)
class LoggedRanker:
    run_id: str
    model_uri: str
    model_version: str
    experiment_id: str


def _ndcg_figure(metrics: Mapping[str, float], importance: Mapping[str, float]) -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = [n for n in ("model", "popularity", "random", "oracle") if f"{n}_ndcg@10" in metrics]
    values = [metrics[f"{n}_ndcg@10"] for n in names]
    left.bar(names, values, color=["#2a6f97", "#a9a9a9", "#d3d3d3", "#e09f3e"][: len(names)])
    left.set_ylabel("NDCG@10 (held-out window)")
    left.set_ylim(0, 1)
    for i, v in enumerate(values):
        left.text(i, v + 0.01, f"{v:.3f}", ha="center")
    top = sorted(importance.items(), key=lambda kv: kv[1])[-15:]
    right.barh([k for k, _ in top], [v for _, v in top], color="#2a6f97")
    right.set_xlabel("gain")
    right.set_title("feature importance")
    fig.tight_layout()
    return fig


def log_ranker(
    *,
    tracking_uri: str,
    artifact_root: str,
    experiment: str,
    model_name: str,
    recommender: Recommender,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    lineage: Mapping[str, Any],
    input_example: pd.DataFrame | None = None,
    alias: str | None = CHAMPION,
    run_name: str | None = None,
) -> LoggedRanker:
    """One MLflow run: params, metrics, lineage, plot, the packaged model; registered, optionally aliased."""
    booster = recommender.booster
    importance = dict(zip(booster.feature_name(), booster.feature_importance("gain").tolist(), strict=True))
    with tracking(tracking_uri) as client:
        experiment_id = ensure_experiment(client, name=experiment, artifact_root=artifact_root)
        tags = {"fitrec.model_name": model_name}
        commit = git_commit()
        if commit:
            tags["mlflow.source.git.commit"] = commit
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
            mlflow.log_params({k: _param(v) for k, v in params.items()})
            mlflow.log_metrics(mlflow_metrics(metrics))
            mlflow.log_dict(dict(lineage), "lineage.json")
            mlflow.log_dict(
                {"features": list(recommender.feature_names), "categorical": recommender.spec.categorical},
                "features.json",
            )
            mlflow.log_dict(importance, "feature_importance.json")
            fig = _ndcg_figure(metrics, importance)
            mlflow.log_figure(fig, "ndcg_and_importance.png")
            import matplotlib.pyplot as plt

            plt.close(fig)
            with tempfile.TemporaryDirectory() as tmp:
                info = mlflow.pyfunc.log_model(
                    name=MODEL_NAME_IN_RUN,
                    # Models from code: nothing is pickled, the loader runs the entry file.
                    python_model=str(Path(models.__file__).parent / "pyfunc_entry.py"),
                    artifacts=recommender.save_artifacts(tmp),
                    # The model code travels with the model: a loader needs no fitrec checkout.
                    code_paths=[str(Path(models.__file__).parent)],
                    pip_requirements=MODEL_REQUIREMENTS,
                    input_example=_example(input_example, recommender),
                )
            version = mlflow.register_model(info.model_uri, model_name, tags={"run_id": run.info.run_id})
        if alias:
            client.set_registered_model_alias(model_name, alias, version.version)
    return LoggedRanker(
        run_id=run.info.run_id,
        model_uri=info.model_uri,
        model_version=str(version.version),
        experiment_id=experiment_id,
    )


def _example(frame: pd.DataFrame | None, recommender: Recommender) -> pd.DataFrame | None:
    """A few rows of model input typed as serving sends them, so the inferred signature accepts
    missing values (float, not int) and categorical strings."""
    if frame is None:
        return None
    spec = recommender.spec
    rows = frame[list(spec.names)].head(5).copy()
    for name in spec.names:
        rows[name] = rows[name].astype(str) if name in spec.categorical else rows[name].astype("float64")
    return rows


def mlflow_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Metric names as MLflow accepts them (`ndcg@10` -> `ndcg_at_10`); NaN and non-numbers left out."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, int | float) and value == value:
            out[key.replace("@", "_at_")] = float(value)
    return out


def _param(value: Any) -> Any:
    # MLflow params are strings of at most 6000 characters.
    text = value if isinstance(value, str) else repr(value)
    return text[:6000]


def set_alias(*, tracking_uri: str, name: str, version: str | int, alias: str = CHAMPION) -> None:
    MlflowClient(tracking_uri=tracking_uri).set_registered_model_alias(name, alias, str(version))


def load_champion(tracking_uri: str, name: str, *, alias: str = CHAMPION) -> tuple[PyFuncModel, str]:
    """The model version behind `alias` and its version number.

    `model.predict(frame)` gives scores; `model.unwrap_python_model()` is the
    `Recommender` with the fast `score` and `explain`.
    """
    client = MlflowClient(tracking_uri=tracking_uri)
    version = client.get_model_version_by_alias(name, alias)
    with tracking(tracking_uri):
        # By number, not alias: the alias may move between the two calls.
        model = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}")
    return model, str(version.version)
