"""MLflow: log a ranking run (params, metrics, lineage, plots, the packaged model), register it, set aliases."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PyFuncModel
from mlflow.tracking import MlflowClient

import models
from models.recommender import Recommender

CHAMPION = "champion"  # what serves
CHALLENGER = "challenger"  # the newest trained version, waiting for the gate or a person
PREVIOUS = "previous"  # the champion before the last promotion (serving's fallback, `fitrec model rollback`)
# Metrics `fitrec model list` shows per version (MLflow's spelling), when the version's run logged them.
KEY_METRICS = ("ndcg_at_10", "recall_at_10", "map_at_10", "mrr", "popularity_ndcg_at_10", "oracle_ndcg_at_10")
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
    aliases: tuple[str, ...] = ()  # the aliases the new version was given


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
    aliases: bool = True,
    run_name: str | None = None,
) -> LoggedRanker:
    """One MLflow run: params, metrics, lineage, plot, the packaged model; registered.

    With `aliases`, the new version becomes `challenger` (and `champion` only when it is the
    registry's first version: see `register_challenger`); without, it gets no alias.
    """
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
        given = register_challenger(client, model_name, str(version.version)) if aliases else ()
    return LoggedRanker(
        run_id=run.info.run_id,
        model_uri=info.model_uri,
        model_version=str(version.version),
        experiment_id=experiment_id,
        aliases=tuple(given),
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


# --- lifecycle: challenger on training, champion moved only by the gate or a person --------------------------


def _alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def register_challenger(client: MlflowClient, name: str, version: str) -> list[str]:
    """Alias a newly registered version: `challenger` always; `champion` only when the registry held no
    other version of `name` (a fresh install then serves). An existing champion is never moved.
    Returns the aliases given."""
    client.set_registered_model_alias(name, CHALLENGER, version)
    given = [CHALLENGER]
    others = [v for v in client.search_model_versions(f"name='{name}'") if str(v.version) != version]
    if not others and _alias_version(client, name, CHAMPION) is None:
        client.set_registered_model_alias(name, CHAMPION, version)
        given.append(CHAMPION)
    return given


@dataclass(frozen=True)
class Promotion:
    champion: str
    previous: str | None  # the champion it replaced (now `previous`), None if there was none


def promote(*, tracking_uri: str, name: str, version: str | int) -> Promotion:
    """Make `version` the champion; the champion it replaces becomes `previous`.

    The `challenger` alias is dropped when it pointed at the promoted version (it is no
    longer waiting). Promoting the champion itself changes nothing.
    """
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    version = str(version)
    client.get_model_version(name, version)  # raises for an unknown version, before anything moves
    old = _alias_version(client, name, CHAMPION)
    if old == version:
        return Promotion(champion=version, previous=_alias_version(client, name, PREVIOUS))
    if old is not None:
        client.set_registered_model_alias(name, PREVIOUS, old)
    client.set_registered_model_alias(name, CHAMPION, version)
    if _alias_version(client, name, CHALLENGER) == version:
        client.delete_registered_model_alias(name, CHALLENGER)
    return Promotion(champion=version, previous=old)


def rollback(*, tracking_uri: str, name: str) -> Promotion:
    """Serve `previous` again: it becomes the champion and the `previous` alias is removed (the version
    rolled back from keeps no alias, so serving never falls back onto it)."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    back = _alias_version(client, name, PREVIOUS)
    if back is None:
        raise ValueError(f"{name} has no '{PREVIOUS}' version to roll back to")
    old = _alias_version(client, name, CHAMPION)
    client.set_registered_model_alias(name, CHAMPION, back)
    client.delete_registered_model_alias(name, PREVIOUS)
    return Promotion(champion=back, previous=old)


@dataclass(frozen=True)
class VersionSummary:
    version: str
    aliases: tuple[str, ...]
    run_id: str | None
    created_at: datetime
    metrics: dict[str, float]


def list_versions(*, tracking_uri: str, name: str, metrics: Sequence[str] = KEY_METRICS) -> list[VersionSummary]:
    """Every version of `name`, newest first, with its aliases and the key metrics its run logged."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        by_alias = client.get_registered_model(name).aliases or {}
    except MlflowException:  # no such model yet
        return []
    aliases: dict[str, list[str]] = {}
    for alias, number in by_alias.items():  # search results do not carry aliases on every store
        aliases.setdefault(str(number), []).append(alias)
    out = []
    for v in sorted(client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version), reverse=True):
        logged: dict[str, float] = {}
        if v.run_id:
            try:
                logged = client.get_run(v.run_id).data.metrics
            except MlflowException:  # the run was deleted: the version still lists
                logged = {}
        out.append(
            VersionSummary(
                version=str(v.version),
                aliases=tuple(sorted(aliases.get(str(v.version), []))),
                run_id=v.run_id,
                created_at=datetime.fromtimestamp(v.creation_timestamp / 1000, tz=UTC),
                metrics={k: float(logged[k]) for k in metrics if k in logged},
            )
        )
    return out


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
