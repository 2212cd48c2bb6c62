"""`fitrec train`: validated events → training.steps (dataset → generators → ranker → evaluate → register).

This module reads what the steps need from the platform (the validated events from the offline event
store, the catalogue, the Feast store, the event log's summary for lineage) and hands it to
`training.steps.run_steps`, which runs every step as a nested MLflow run under one parent run.
When the events came from `fitrec simulate` (it leaves `simulation.json` in the data folder), the
simulator's ground truth is rebuilt and evaluated beside the model as the oracle.
"""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import mlflow
import polars as pl
import sqlalchemy as sa

from features.schema import ENGAGEMENT_WEIGHTS, PROFILE_EVENT_TYPES
from features.services import RANKING_FEATURES, RANKING_SERVICE
from pipelines.build_features import feature_store, offline_url, read_items, read_validated_events
from pipelines.config import PipelineSettings
from platform_api.db import make_engine
from platform_api.events.tables import EventLog
from platform_api.runtime import open_platform
from training.baselines import Oracle
from training.datasets import LABEL_EVENT_TYPES
from training.steps import STEPS, DatasetSources, Tracking, TrainingConfig, TuneOptions, run_steps

# The event types training reads: labels, the generators' interactions and the users' profiles.
# Profiles as they were at each time: sign-up answers, then every update.
TRAIN_EVENT_TYPES = tuple(dict.fromkeys((*LABEL_EVENT_TYPES, *ENGAGEMENT_WEIGHTS, *PROFILE_EVENT_TYPES)))
SIMULATION_MANIFEST = "simulation.json"
# progress(step, steps_done, steps_total), as the feature build reports it.
Progress = Callable[[str, int, int], None]
__all__ = ["STEPS", "TrainReport", "record_simulation", "run_training", "tracking_of"]


@dataclass(frozen=True)
class TrainReport:
    run_id: str  # the registered model's run (the `register` step)
    model_version: str
    metrics: dict[str, float]
    lineage: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()  # the aliases the new version was given
    parent_run_id: str = ""
    run_ids: dict[str, str] = field(default_factory=dict)  # step -> run id


def tracking_of(settings: PipelineSettings) -> Tracking:
    return Tracking(
        tracking_uri=settings.tracking_uri,
        artifact_root=settings.artifact_root,
        experiment=settings.model_name,
        model_name=settings.model_name,
    )


def _log_summary(engine: sa.Engine) -> dict[str, Any]:
    """Size and time span of the whole event log, for the run's data lineage."""
    t = EventLog.__table__.c
    with engine.connect() as conn:
        counts: dict[str, int] = dict(
            conn.execute(sa.select(t.event_type, sa.func.count()).group_by(t.event_type)).all()
        )
        first, last = conn.execute(sa.select(sa.func.min(t.occurred_at), sa.func.max(t.occurred_at))).one()
    return {
        "event_log_events": int(sum(counts.values())),
        "event_log_counts": {k: int(v) for k, v in sorted(counts.items())},
        "event_log_first": str(first) if first is not None else None,
        "event_log_last": str(last) if last is not None else None,
    }


def record_simulation(data_dir: Path, **parameters: Any) -> None:
    """Note a `fitrec simulate` run's parameters in the data folder, so training can rebuild its oracle."""
    path = data_dir / SIMULATION_MANIFEST
    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in parameters.items()})
    path.write_text(json.dumps(runs, indent=1))


def simulation_oracle(settings: PipelineSettings) -> tuple[Oracle | None, dict[str, Any] | None]:
    """The latest recorded simulation's ground truth (the same arguments give the same population)."""
    from datetime import datetime

    from platform_api.catalogue.service import list_items
    from training.simulator import simulate

    path = settings.data_dir / SIMULATION_MANIFEST
    if not path.exists():
        return None, None
    latest = json.loads(path.read_text())[-1]
    platform = open_platform(settings.platform())
    try:
        with platform.sessions() as session:
            items = list_items(session)
    finally:
        platform.close()
    sim = simulate(
        items,
        users=int(latest["users"]),
        days=int(latest["days"]),
        seed=int(latest["seed"]),
        end=datetime.fromisoformat(latest["end"]),
    )
    return sim.utility, latest


def dataset_sources(
    settings: PipelineSettings, *, oracle: Oracle | None = None
) -> tuple[DatasetSources, Oracle | None]:
    """What the dataset step reads (validated events, catalogue, Feast store, lineage), and the oracle:
    `oracle` if given, else the recorded simulation's ground truth when there is one."""
    engine = make_engine(settings.platform().sqlalchemy_url)
    try:
        lineage: dict[str, Any] = _log_summary(engine)
        items = read_items(engine)
    finally:
        engine.dispose()
    events: pl.DataFrame = read_validated_events(settings, TRAIN_EVENT_TYPES)
    if events.filter(pl.col("event_type") == LABEL_EVENT_TYPES[0]).is_empty():
        raise ValueError("no validated label events: run `fitrec features build` (it validates the event log) first")
    simulation = None
    if oracle is None:
        oracle, simulation = simulation_oracle(settings)
    url = offline_url(settings)
    lineage.update(
        {
            "label_event_types": list(LABEL_EVENT_TYPES),
            "events_read": int(events.height),
            "events_source": "validated",
            "offline_store": "postgres" if url else "file",
            "feature_service": RANKING_SERVICE,
            "features": list(RANKING_FEATURES),
            "database": make_engine_dialect(settings),
            "oracle": "given" if simulation is None and oracle is not None else simulation,
        }
    )
    sources = DatasetSources(
        events=events,
        items=items,
        store=feature_store(settings),
        source="postgresql://offline-event-store" if url else settings.offline_dir.resolve().as_uri(),
        lineage=lineage,
    )
    return sources, oracle


def run_training(
    settings: PipelineSettings,
    *,
    oracle: Oracle | None = None,
    holdout_days: float | None = None,
    progress: Progress | None = None,
    params: Mapping[str, Any] | None = None,
    aliases: bool = True,
    config: TrainingConfig | None = None,
    tune_options: TuneOptions | None = None,
) -> TrainReport:
    """Train on the validated events of `settings`, evaluate on the held-out window, log and register.

    The new version becomes `challenger`; it becomes `champion` only when the registry was empty
    (`aliases=False`: no alias at all). Moving the champion is `training.registry.promote`'s job.
    `oracle(user_id, item_ids) -> scores` (the simulator's ground truth) is evaluated beside the model;
    without one, the recorded simulation's is rebuilt when there is one. `params` are LightGBM
    parameters over the defaults; `holdout_days` defaults to the last 20% of the labelled window.
    With `tune_options`, a Ray Tune search between the generators and the ranker picks the rankers'
    parameters (validation groups only).
    """
    config = config or TrainingConfig()
    if holdout_days is not None:
        config = replace(config, holdout_days=holdout_days)
    if params:
        config = replace(config, ranker_params={**config.ranker_params, **params})
    sources, found = dataset_sources(settings, oracle=oracle)
    result = run_steps(
        tracking_of(settings),
        sources,
        config=config,
        oracle=found,
        aliases=aliases,
        progress=progress,
        tune_options=tune_options,
    )
    window = _window(settings, result.run_ids["dataset"])
    numeric = {k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float)}
    return TrainReport(
        run_id=result.run_ids["register"],
        model_version=result.model_version,
        metrics=numeric,
        lineage={**result.lineage, "split": window},
        aliases=result.aliases,
        parent_run_id=result.parent_run_id,
        run_ids=result.run_ids,
    )


def _window(settings: PipelineSettings, dataset_run_id: str) -> dict[str, Any]:
    from training.registry import tracking

    with tracking(settings.tracking_uri):
        return dict(mlflow.artifacts.load_dict(f"runs:/{dataset_run_id}/dataset/window.json"))


def make_engine_dialect(settings: PipelineSettings) -> str:
    """The event log's backend (never its URL: it may hold a password)."""
    return settings.platform().sqlalchemy_url.split(":", 1)[0]
