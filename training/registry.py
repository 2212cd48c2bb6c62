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
from models.recommender import PACKAGE_ARTIFACT, PackagedRecommender

CHAMPION = "champion"  # what serves
CHALLENGER = "challenger"  # the newest trained version, waiting for the gate or a person
PREVIOUS = "previous"  # the champion before the last promotion (serving's fallback, `fitrec model rollback`)
ROLLED_BACK_TAG = "fitrec.rolled_back_at"  # on a version `rollback` took the champion alias from
# Metrics `fitrec model list` shows per version (MLflow's spelling), when the version's run logged them.
KEY_METRICS = (
    "ndcg_at_10",
    "map_at_10",
    "mrr",
    "popularity_ndcg_at_10",
    "oracle_ndcg_at_10",
    "topk_recall_at_10",
    "topk_utility_vs_oracle",
)
MODEL_NAME_IN_RUN = "recommender"
# The packaged model needs only these at load time (pinned loosely; the serving image pins exactly).
MODEL_REQUIREMENTS = [
    "lightgbm>=4.3,<5",
    "pandas>=2.1,<3",
    "numpy>=1.26,<3",
    "scipy>=1.11,<2",
    "mlflow>=3.17,<4",
]
TORCH_REQUIREMENTS = ["torch>=2.3,<3", "faiss-cpu>=1.9,<2"]


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
class LoggedModel:
    run_id: str
    model_uri: str
    model_version: str
    experiment_id: str
    aliases: tuple[str, ...] = ()  # the aliases the new version was given


def requirements(package: PackagedRecommender) -> list[str]:
    """What loading this package needs: the base set, plus torch and faiss when a part of it uses them."""
    modules = {type(g).__module__ for g in package.generators.values()}
    rankers = [package.ranker, *getattr(package.ranker, "members", {}).values()]
    modules |= {type(r).__module__ for r in rankers}
    extra = TORCH_REQUIREMENTS if any(m.endswith(("two_tower", "torch_ranker")) for m in modules) else []
    return [*MODEL_REQUIREMENTS, *extra]


def log_recommender(
    *,
    tracking_uri: str,
    artifact_root: str,
    experiment: str,
    model_name: str,
    package: PackagedRecommender,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    lineage: Mapping[str, Any],
    input_example: pd.DataFrame | None = None,
    aliases: bool = True,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> LoggedModel:
    """One MLflow run holding the packaged recommender as a pyfunc model (from code: nothing pickled),
    with its configuration, params, metrics and lineage; registered under `model_name`.

    With `aliases`, the new version becomes `challenger` (and `champion` only when it is the
    registry's first version: see `register_challenger`); without, it gets no alias.
    """
    with tracking(tracking_uri) as client:
        experiment_id = ensure_experiment(client, name=experiment, artifact_root=artifact_root)
        all_tags = {"fitrec.model_name": model_name, **(tags or {})}
        commit = git_commit()
        if commit:
            all_tags["mlflow.source.git.commit"] = commit
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=run_name, tags=all_tags, parent_run_id=parent_run_id
        ) as run:
            mlflow.log_params({k: _param(v) for k, v in params.items()})
            mlflow.log_metrics(mlflow_metrics(metrics))
            mlflow.log_dict(dict(lineage), "lineage.json")
            mlflow.log_text(package.config.to_json(), "recommender_config.json")
            with tempfile.TemporaryDirectory() as tmp:
                folder = package.save(Path(tmp) / PACKAGE_ARTIFACT)
                info = mlflow.pyfunc.log_model(
                    name=MODEL_NAME_IN_RUN,
                    # Models from code: nothing is pickled, the loader runs the entry file.
                    python_model=str(Path(models.__file__).parent / "pyfunc_entry.py"),
                    artifacts={PACKAGE_ARTIFACT: str(folder)},
                    # The model code travels with the model: a loader needs no fitrec checkout.
                    code_paths=[str(Path(models.__file__).parent)],
                    pip_requirements=requirements(package),
                    input_example=_example(input_example, package),
                )
            version = mlflow.register_model(info.model_uri, model_name, tags={"run_id": run.info.run_id})
        given = register_challenger(client, model_name, str(version.version)) if aliases else ()
    return LoggedModel(
        run_id=run.info.run_id,
        model_uri=info.model_uri,
        model_version=str(version.version),
        experiment_id=experiment_id,
        aliases=tuple(given),
    )


def _example(frame: pd.DataFrame | None, package: PackagedRecommender) -> pd.DataFrame | None:
    """A few candidate rows typed as serving sends them (ids as text, features as float, so the inferred
    signature accepts missing values); the source columns are left to the model."""
    if frame is None:
        return None
    rows = frame[["user_id", "item_id", *package.online_features]].head(5).copy()
    rows["user_id"], rows["item_id"] = rows["user_id"].astype(str), rows["item_id"].astype(str)
    for name in package.online_features:
        rows[name] = pd.to_numeric(rows[name], errors="coerce").astype("float64")
    return rows.reset_index(drop=True)


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
    rolled back from keeps no alias, so serving never falls back onto it, and the tag `ROLLED_BACK_TAG`, so
    the retraining pipeline's gate never promotes it again: only a person can)."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    back = _alias_version(client, name, PREVIOUS)
    if back is None:
        raise ValueError(f"{name} has no '{PREVIOUS}' version to roll back to")
    old = _alias_version(client, name, CHAMPION)
    client.set_registered_model_alias(name, CHAMPION, back)
    client.delete_registered_model_alias(name, PREVIOUS)
    if old is not None:
        client.set_model_version_tag(name, old, ROLLED_BACK_TAG, datetime.now(UTC).isoformat())
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

    `model.predict(frame)` gives scores of candidate rows; `model.unwrap_python_model()` is the
    `PackagedRecommender` with `candidates`, `score`, `explain` and `slate`.
    """
    client = MlflowClient(tracking_uri=tracking_uri)
    version = client.get_model_version_by_alias(name, alias)
    with tracking(tracking_uri):
        # By number, not alias: the alias may move between the two calls.
        model = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}")
    return model, str(version.version)
