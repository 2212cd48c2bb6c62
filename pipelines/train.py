"""Training step: validated events → labels → point-in-time features → LambdaRank → evaluation → MLflow champion.

Labels come from the offline event store the feature build exports into (events
that passed validation only); the point-in-time join runs on the configured
offline store (parquet files, or PostgreSQL where Feast joins in the database).
"""

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import polars as pl
import sqlalchemy as sa

from features.retrieval import historical_features
from features.services import RANKING_FEATURES, RANKING_SERVICE
from pipelines.build_features import feature_store, offline_url, read_validated_events
from pipelines.config import PipelineSettings
from platform_api.db import make_engine
from platform_api.events.tables import EventLog
from training.baselines import Oracle
from training.datasets import LABEL_EVENT_TYPES, build_labels, split_by_time
from training.evaluate import evaluate_ranking
from training.ranker import train_ranker, with_positive_groups
from training.registry import log_ranker

# The popularity baseline ranks by the same feature serving orders its candidates by.
POPULARITY_FEATURE = "item_popularity_28d"
STEPS = ("read events", "labels", "features", "train", "evaluate", "log and register")
# progress(step, steps_done, steps_total), as the feature build reports it.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class TrainReport:
    run_id: str
    model_version: str
    metrics: dict[str, float]
    lineage: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()  # the aliases the new version was given


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


def _categorical(frame: pd.DataFrame, features: list[str]) -> list[str]:
    # Every ranking_v1 feature is numeric today; a string column added later is treated as categorical.
    return [
        c for c in features if not pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]


def run_training(
    settings: PipelineSettings,
    *,
    oracle: Oracle | None = None,
    holdout_days: float | None = None,
    progress: Progress | None = None,
    params: Mapping[str, Any] | None = None,
    aliases: bool = True,
) -> TrainReport:
    """Train on the event log of `settings`, evaluate on the held-out window, log and register.

    The new version becomes `challenger`; it becomes `champion` only when the registry was empty
    (`aliases=False`: no alias at all). Moving the champion is `training.registry.promote`'s job.

    `oracle(user_id, item_ids) -> scores` (the simulator's ground truth) adds an
    oracle ranking to the evaluation; `holdout_days` defaults to the last 20% of
    the labelled window.
    """
    started = time.perf_counter()

    def step(done: int) -> None:
        if progress is not None:
            progress(STEPS[done] if done < len(STEPS) else "done", done, len(STEPS))

    step(0)
    engine = make_engine(settings.platform().sqlalchemy_url)
    try:
        lineage: dict[str, Any] = _log_summary(engine)
    finally:
        engine.dispose()
    events: pl.DataFrame = read_validated_events(settings, LABEL_EVENT_TYPES)
    if events.is_empty():
        raise ValueError("no validated label events: run `fitrec features build` (it validates the event log) first")

    step(1)
    labels = build_labels(events)
    split = split_by_time(labels, holdout_days=holdout_days)
    # Groups without any positive label neither train LambdaRank nor count in NDCG: skip their feature lookups.
    parts = {
        name: with_positive_groups(frame)
        for name, frame in (("train", split.train), ("valid", split.valid), ("test", split.test))
    }
    entity_df = pd.concat([frame.assign(split=name) for name, frame in parts.items()], ignore_index=True)

    step(2)
    url = offline_url(settings)
    store = feature_store(settings)
    featured = historical_features(store, entity_df)
    train, valid, test = (featured[featured["split"] == name].reset_index(drop=True) for name in parts)

    step(3)
    features = list(RANKING_FEATURES)
    trained = train_ranker(train, valid, features=features, categorical=_categorical(featured, features), params=params)

    step(4)
    recommender = trained.recommender()
    metrics: dict[str, Any] = evaluate_ranking(
        test,
        model_scores=recommender.score(test),
        popularity_column=POPULARITY_FEATURE if POPULARITY_FEATURE in test.columns else None,
        oracle=oracle,
    )
    metrics.update(
        {
            "valid_ndcg@10": trained.valid_ndcg,
            "best_iteration": float(trained.best_iteration),
            "train_rows": float(trained.train_rows),
            "train_groups": float(trained.train_groups),
            "labelled_rows": float(len(labels)),
            "labelled_groups": float(labels["request_id"].nunique()),
        }
    )
    label_counts = Counter(labels["label"].tolist())
    lineage.update(
        {
            "label_event_types": list(LABEL_EVENT_TYPES),
            "label_events_read": int(events.height),
            "label_events_source": "validated",
            "offline_store": "postgres" if url else "file",
            "label_counts": {str(k): int(v) for k, v in sorted(label_counts.items())},
            "split": split.summary(),
            "positive_groups": {name: int(frame["request_id"].nunique()) for name, frame in parts.items()},
            "feature_service": RANKING_SERVICE,
            "features": features,
            "database": make_engine_dialect(settings),
            "popularity_feature": POPULARITY_FEATURE,
        }
    )

    step(5)
    logged = log_ranker(
        tracking_uri=settings.tracking_uri,
        artifact_root=settings.artifact_root,
        experiment=settings.model_name,
        model_name=settings.model_name,
        recommender=recommender,
        params={
            **{k: v for k, v in trained.params.items() if k not in ("verbose",)},
            "feature_service": RANKING_SERVICE,
            "holdout_days": round(split.holdout_days, 3),
            "oracle": oracle is not None,
        },
        metrics={**metrics, "training_seconds": time.perf_counter() - started},
        lineage=lineage,
        input_example=test[features].head(5),
        aliases=aliases,
    )
    step(6)
    numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
    return TrainReport(
        run_id=logged.run_id,
        model_version=logged.model_version,
        metrics=numeric,
        lineage=lineage,
        aliases=logged.aliases,
    )


def make_engine_dialect(settings: PipelineSettings) -> str:
    """The event log's backend (never its URL: it may hold a password)."""
    return settings.platform().sqlalchemy_url.split(":", 1)[0]
