"""Training as steps that hand each other MLflow run ids: dataset → generators → ranker → evaluate → register.

Every step is one MLflow run (nested under the training's parent run) that reads what the step before it
logged, through that run's id only, and logs what the next one needs:

- `build_dataset`: labelled impressions (one ranking group per request) with point-in-time features from
  Feast, the engagement interactions the generators learn from, the users' stored attributes and the
  catalogue; split by time into train / valid / test. Logged as an MLflow dataset input (digest, time
  window, row counts) and as parquet artifacts.
- `fit_generators`: the candidate generators fitted once per *stage*, each stage on the interactions
  before its time only: a few carves of the training window (the ranker learns from rows whose source
  features come from generators that never saw them), the validation window, the held-out window
  (`eval`), and all of them (`final`, what serves).
- `fit_ranker`: LightGBM LambdaRank (and the PyTorch ranker when `models.torch_ranker` exists) on the
  feature service's features plus each source's rank and relative score; which one serves, or a blend,
  is chosen on the validation groups and recorded.
- `evaluate`: the held-out window with the `eval` generators: the shown slates (NDCG@10, MAP@10, MRR)
  and the top-10 over the whole catalogue (NDCG@10, Recall@10, MAP@10, MRR, coverage, novelty), per
  segment (cold users, new items), popularity, random and the simulator's oracle beside the model; plots.
- `register`: the `final` generators + the ranker + the configuration as one pyfunc model, registered
  as `challenger` (champion only for a registry's first version).

`run_steps` runs them all under one parent run. Nothing here reads the platform: the caller hands the
validated events, the catalogue and the Feast store to `build_dataset` (the pipelines do).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd
import polars as pl
from mlflow.data.pandas_dataset import from_pandas
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from features.retrieval import historical_features
from features.schema import ENGAGEMENT_WEIGHTS, TIMESTAMP
from features.services import RANKING_FEATURES, RANKING_SERVICE
from features.transforms import latest_rows, user_profile
from models.recommender import (
    BlendRanker,
    PackagedRecommender,
    RecommenderConfig,
    SlatePolicy,
    load_ranker,
    save_ranker,
    users_frame,
)
from training.baselines import Oracle, oracle_recs, oracle_scores, popularity_recs, popularity_scores, random_recs
from training.datasets import build_labels, split_by_time
from training.evaluate import (
    calibration,
    mean_ndcg,
    ndcg_curve,
    permutation_importance,
    slate_metrics,
    topk_curve,
    topk_report,
)
from training.ranker import train_ranker, with_positive_groups
from training.registry import ensure_experiment, git_commit, log_recommender, mlflow_metrics, tracking

if TYPE_CHECKING:
    from feast import FeatureStore

STEPS = ("dataset", "generators", "ranker", "evaluate", "register")
STEP_TAG, INPUT_TAG, DATASET_TAG = "fitrec.step", "fitrec.input_run_id", "fitrec.dataset_run_id"
GENERATORS_TAG, RANKER_TAG, EVALUATE_TAG = "fitrec.generators_run_id", "fitrec.ranker_run_id", "fitrec.evaluate_run_id"
POPULARITY_FEATURE = "item_popularity_28d"  # the slate popularity baseline: the feature serving used to order by
# Cold users are described by these stored profile values (users-frame column -> online feature).
USER_ATTRIBUTES = {
    "goal": "user_profile:goal",
    "level": "user_profile:fitness_level",
    "equipment": "user_profile:equipment",
}
MULTI_VALUED = {"equipment": ","}  # the profile table stores equipment comma-joined
ITEM_ATTRIBUTES = ["item_type", "category", "level", "goal", "equipment", "muscles", "duration_min"]
# progress(step, steps_done, steps_total)
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Tracking:
    """Where runs and models go."""

    tracking_uri: str
    artifact_root: str
    experiment: str
    model_name: str


@dataclass(frozen=True)
class TrainingConfig:
    """Everything a training run decides up front (logged as the parent run's params)."""

    holdout_days: float | None = None  # default: the last 20% of the labelled window
    carves: int = 2  # training-window carves the ranker learns from (each with generators fitted before it)
    per_source: dict[str, int] = field(
        default_factory=lambda: {"popularity": 100, "ease": 100, "content": 100, "two_tower": 100}
    )
    k: int = 10
    max_per_category: int | None = 7
    exclude_seen: bool = False
    popularity_half_life_days: float = 14.0
    ease_l2: float = 50.0
    two_tower: bool = True  # when models.generators.two_tower is there
    two_tower_epochs: int = 10
    torch_ranker: bool = True  # when models.torch_ranker is there
    # PyTorch fits through Ray Train (same code on a cluster); None: only when RAY_ADDRESS names a cluster,
    # since a local Ray Train worker costs 12-20 s of start-up per fit on this 2-core machine.
    ray_train: bool | None = None
    choice_margin: float = 0.01  # valid NDCG@10 another ranker (or a blend) must gain over LightGBM to serve
    ranker_params: dict[str, Any] = field(default_factory=dict)
    torch_params: dict[str, Any] = field(default_factory=dict)
    seed: int = 7

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> TrainingConfig:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class DatasetSources:
    """What the dataset step reads, handed over by the caller."""

    events: pl.DataFrame  # validated events (the label types, the engagement types, the profile events)
    items: pl.DataFrame  # the catalogue (features.transforms.items_frame)
    store: FeatureStore  # point-in-time features of the feature service
    source: str  # where the events were read from (a URI without secrets), for the dataset's lineage
    lineage: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepsResult:
    parent_run_id: str
    run_ids: dict[str, str]  # step -> run id
    model_version: str
    aliases: tuple[str, ...]
    metrics: dict[str, float]
    lineage: dict[str, Any]


# --- MLflow plumbing ---------------------------------------------------------------------------------------


@contextmanager
def _step_run(
    track: Tracking, step: str, *, input_run_id: str | None, parent_run_id: str | None, tags: Mapping[str, str]
) -> Iterator[Any]:
    """A run for `step`, nested under `parent_run_id` (default: the input run's parent, if any)."""
    with tracking(track.tracking_uri) as client:
        experiment_id = ensure_experiment(client, name=track.experiment, artifact_root=track.artifact_root)
        if parent_run_id is None and input_run_id is not None:
            parent_run_id = client.get_run(input_run_id).data.tags.get("mlflow.parentRunId")
        all_tags = {STEP_TAG: step, "fitrec.model_name": track.model_name, **tags}
        if input_run_id:
            all_tags[INPUT_TAG] = input_run_id
        commit = git_commit()
        if commit:
            all_tags["mlflow.source.git.commit"] = commit
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=step, parent_run_id=parent_run_id, tags=all_tags
        ) as run:
            yield run


def _tags_of(track: Tracking, run_id: str, step: str) -> dict[str, str]:
    tags = MlflowClient(tracking_uri=track.tracking_uri).get_run(run_id).data.tags
    if tags.get(STEP_TAG) != step:
        raise ValueError(f"run {run_id} is a {tags.get(STEP_TAG)!r} step run, not {step!r}")
    return dict(tags)


def _download(track: Tracking, run_id: str, path: str, into: Path) -> Path:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # steps read many small files
    return Path(
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=path, dst_path=str(into), tracking_uri=track.tracking_uri
        )
    )


def _time(value: str) -> pd.Timestamp:
    return pd.Timestamp(value).tz_convert("UTC") if pd.Timestamp(value).tzinfo else pd.Timestamp(value, tz="UTC")


# --- step 1: dataset ---------------------------------------------------------------------------------------


@dataclass
class Dataset:
    """The dataset step's artifacts, read back."""

    labelled: pd.DataFrame  # request_id, user_id, item_id, event_timestamp, position, label, split + features
    interactions: pd.DataFrame  # user_id, item_id, weight, timestamp (s), event_type, occurred_at
    profiles: pd.DataFrame  # stored user attributes, indexed by user_id
    items: pd.DataFrame  # the catalogue, indexed by item_id
    window: dict[str, Any]  # the split's times and counts

    def part(self, name: str) -> pd.DataFrame:
        return self.labelled[self.labelled["split"] == name].reset_index(drop=True)

    def interactions_before(self, until: pd.Timestamp | None) -> pd.DataFrame:
        if until is None:
            return self.interactions
        return self.interactions[self.interactions["occurred_at"] < until].reset_index(drop=True)

    def users(self) -> pd.DataFrame:
        return users_frame(self.profiles, USER_ATTRIBUTES, MULTI_VALUED)

    def item_table(self) -> pd.DataFrame:
        """Item attributes for the generators (lists kept as lists)."""
        return self.items[[c for c in ITEM_ATTRIBUTES if c in self.items.columns]]


def interactions_frame(events: pl.DataFrame) -> pd.DataFrame:
    """Engagement events with an item as weighted, timestamped interactions (features.schema's weights)."""
    rows = events.filter(pl.col("event_type").is_in(list(ENGAGEMENT_WEIGHTS)) & pl.col("item_id").is_not_null())
    frame = rows.select(
        "user_id",
        "item_id",
        weight=pl.col("event_type").replace_strict(ENGAGEMENT_WEIGHTS, return_dtype=pl.Float64),
        timestamp=pl.col("occurred_at").dt.epoch("us").cast(pl.Float64) / 1e6,
        event_type="event_type",
        occurred_at="occurred_at",
    ).sort("occurred_at")
    out = frame.to_pandas()
    out["occurred_at"] = pd.to_datetime(out["occurred_at"], utc=True)
    return out


def _profiles(events: pl.DataFrame, as_of: datetime) -> pd.DataFrame:
    """Each user's latest stored profile values, as the online store holds them."""
    table = latest_rows(user_profile(events, as_of=as_of), "user_id").drop(TIMESTAMP)
    return table.to_pandas().set_index("user_id")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_dataset(
    track: Tracking,
    sources: DatasetSources,
    *,
    config: TrainingConfig | None = None,
    parent_run_id: str | None = None,
) -> str:
    """Step 1: labels, time split, point-in-time features; returns the run id."""
    config = config or TrainingConfig()
    started = time.perf_counter()
    labels = build_labels(sources.events)
    split = split_by_time(labels, holdout_days=config.holdout_days)
    # Groups without any positive label neither train LambdaRank nor count in NDCG: skip their feature lookups.
    parts = {
        name: with_positive_groups(frame)
        for name, frame in (("train", split.train), ("valid", split.valid), ("test", split.test))
    }
    entity_df = pd.concat([frame.assign(split=name) for name, frame in parts.items()], ignore_index=True)
    labelled = historical_features(sources.store, entity_df)
    interactions = interactions_frame(sources.events)
    profiles = _profiles(sources.events, split.window_end)
    items = sources.items.to_pandas().set_index("item_id")
    window = {
        **split.summary(),
        "positive_groups": {name: int(frame["request_id"].nunique()) for name, frame in parts.items()},
        "interactions": len(interactions),
        "interaction_users": int(interactions["user_id"].nunique()),
        "users": len(profiles),
        "items": len(items),
        "feature_service": RANKING_SERVICE,
        "features": list(RANKING_FEATURES),
    }
    with _step_run(track, "dataset", input_run_id=None, parent_run_id=parent_run_id, tags={}) as run:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "dataset"
            folder.mkdir()
            labelled.to_parquet(folder / "labelled.parquet", index=False)
            interactions.to_parquet(folder / "interactions.parquet", index=False)
            profiles.to_parquet(folder / "profiles.parquet")
            items.to_parquet(folder / "items.parquet")
            (folder / "window.json").write_text(json.dumps(window, indent=1, default=str))
            (folder / "lineage.json").write_text(json.dumps(dict(sources.lineage), indent=1, default=str))
            sha = _sha256(folder / "labelled.parquet")
            mlflow.log_artifacts(str(folder), "dataset")
        # The dataset's source is its own parquet file in the run; where the events came from is a tag.
        dataset = _dataset(
            labelled, mlflow.get_artifact_uri("dataset/labelled.parquet"), f"{RANKING_SERVICE}-labelled-impressions"
        )
        mlflow.log_input(
            dataset,
            context="training",
            tags={
                "window_start": window["window_start"],
                "cutoff": window["cutoff"],
                "window_end": window["window_end"],
                "rows": str(len(labelled)),
                "sha256": sha,
                "events_source": sources.source,
            },
        )
        interactions_input = _dataset(
            interactions.drop(columns="occurred_at"),
            mlflow.get_artifact_uri("dataset/interactions.parquet"),
            "engagement-interactions",
            targets=None,
        )
        mlflow.log_input(
            interactions_input,
            context="generators",
            tags={"rows": str(len(interactions)), "events_source": sources.source},
        )
        mlflow.log_params(
            {
                "feature_service": RANKING_SERVICE,
                "window_start": window["window_start"],
                "valid_start": window["valid_start"],
                "cutoff": window["cutoff"],
                "window_end": window["window_end"],
                "holdout_days": window["holdout_days"],
                "dataset_digest": dataset.digest,
                "dataset_sha256": sha,
            }
        )
        mlflow.log_metrics(
            {
                **{f"{name}_rows": float((labelled["split"] == name).sum()) for name in parts},
                **{f"{name}_groups": float(n) for name, n in window["positive_groups"].items()},
                "labelled_rows": float(len(labels)),
                "interactions": float(len(interactions)),
                "users": float(len(profiles)),
                "items": float(len(items)),
                "seconds": time.perf_counter() - started,
            }
        )
        return str(run.info.run_id)


def _dataset(frame: pd.DataFrame, uri: str, name: str, *, targets: str | None = "label") -> Any:
    """An MLflow dataset of `frame` whose source is `uri` (its file among the run's artifacts); MLflow
    computes the digest."""
    try:
        return from_pandas(frame, source=uri, targets=targets, name=name)
    except MlflowException:  # an artifact store MLflow has no dataset source for: the source stays unnamed
        return from_pandas(frame, targets=targets, name=name)


def load_dataset(track: Tracking, dataset_run_id: str) -> Dataset:
    """The dataset a `build_dataset` run logged."""
    _tags_of(track, dataset_run_id, "dataset")
    with tempfile.TemporaryDirectory() as tmp:
        folder = _download(track, dataset_run_id, "dataset", Path(tmp))
        labelled = pd.read_parquet(folder / "labelled.parquet")
        interactions = pd.read_parquet(folder / "interactions.parquet")
        profiles = pd.read_parquet(folder / "profiles.parquet")
        items = pd.read_parquet(folder / "items.parquet")
        window = json.loads((folder / "window.json").read_text())
    for column in ("equipment", "muscles"):  # parquet gives numpy arrays back for list columns
        if column in items:
            items[column] = items[column].map(lambda v: list(v) if v is not None else [])
    return Dataset(labelled, interactions, profiles, items, window)


# --- step 2: generators ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """Generators fitted on the interactions before `fit_until`; they describe labelled rows of `split` from
    `rows_from` (inclusive) to `rows_until` (exclusive). `final` (fit_until None) sees every interaction."""

    name: str
    fit_until: str | None
    split: str | None
    rows_from: str | None = None
    rows_until: str | None = None


def stages(window: Mapping[str, Any], carves: int) -> list[Stage]:
    """The carves of the training window, then valid, eval (the held-out window) and final."""
    start, valid_start = _time(window["window_start"]), _time(window["valid_start"])
    span = valid_start - start
    bounds = [start + span * (i / (carves + 1)) for i in range(1, carves + 1)] + [valid_start]
    out = [
        Stage(f"carve_{i + 1}", bounds[i].isoformat(), "train", bounds[i].isoformat(), bounds[i + 1].isoformat())
        for i in range(carves)
    ]
    out.append(Stage("valid", window["valid_start"], "valid"))
    out.append(Stage("eval", window["cutoff"], "test"))
    out.append(Stage("final", None, None))
    return out


def make_generators(config: TrainingConfig) -> dict[str, Any]:
    """Fresh candidate generators: popularity per segment (goal × level), EASE, content, and the two-tower
    when its module is there."""
    from models.generators import ContentGenerator, EASEGenerator, PopularityGenerator

    generators: dict[str, Any] = {
        "popularity": PopularityGenerator(
            half_life_days=config.popularity_half_life_days, segment_columns=["goal", "level"], name="popularity"
        ),
        "ease": EASEGenerator(l2=config.ease_l2, name="ease"),
        "content": ContentGenerator(
            columns=ITEM_ATTRIBUTES,
            user_columns={"goal": "goal", "level": "level", "equipment": "equipment"},
            name="content",
        ),
    }
    if config.two_tower and importlib.util.find_spec("models.generators.two_tower") is not None:
        from models.generators.two_tower import TwoTowerGenerator

        generators["two_tower"] = TwoTowerGenerator(**two_tower_params(config))
    return generators


def two_tower_params(config: TrainingConfig) -> dict[str, Any]:
    return {
        "epochs": config.two_tower_epochs,
        "user_columns": list(USER_ATTRIBUTES),
        "item_columns": ITEM_ATTRIBUTES,
        # One thread: small batches, where a second thread costs more than it saves (0.05 vs 0.24 s a step here).
        "threads": 1,
        "seed": config.seed,
        "name": "two_tower",
    }


def uses_ray_train(config: TrainingConfig) -> bool:
    if config.ray_train is not None:
        return config.ray_train
    from training.ray_runtime import RaySettings

    return not RaySettings().local


def fit_generators(
    track: Tracking, dataset_run_id: str, *, config: TrainingConfig | None = None, parent_run_id: str | None = None
) -> str:
    """Step 2: every generator fitted per stage; returns the run id."""
    config = config or TrainingConfig()
    data = load_dataset(track, dataset_run_id)
    users, items = data.users(), data.item_table()
    plan = stages(data.window, config.carves)
    seconds: dict[str, float] = {}
    sizes: dict[str, float] = {}
    with _step_run(
        track,
        "generators",
        input_run_id=dataset_run_id,
        parent_run_id=parent_run_id,
        tags={DATASET_TAG: dataset_run_id},
    ) as run:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "generators"
            from models.generators.persist import save_generator

            for stage in plan:
                interactions = data.interactions_before(None if stage.fit_until is None else _time(stage.fit_until))
                sizes[f"{stage.name}_interactions"] = float(len(interactions))
                for name, generator in make_generators(config).items():
                    started = time.perf_counter()
                    if name == "two_tower" and uses_ray_train(config):
                        from training.torch_train import fit_two_tower_on_ray

                        generator = fit_two_tower_on_ray(
                            interactions, items, users_frame=users, params=two_tower_params(config)
                        )
                    else:
                        generator.fit(interactions, items, users_frame=users)
                    seconds[f"{stage.name}_{name}_seconds"] = time.perf_counter() - started
                    save_generator(generator, root / stage.name / name)
            (root / "stages.json").write_text(json.dumps([asdict(s) for s in plan], indent=1))
            (root / "training_config.json").write_text(config.to_json())
            mlflow.log_artifacts(str(root), "generators")
        mlflow.log_params({"generators": ",".join(make_generators(config)), "stages": ",".join(s.name for s in plan)})
        mlflow.log_metrics({**sizes, **seconds})
        return str(run.info.run_id)


@dataclass
class Generators:
    dataset_run_id: str
    config: TrainingConfig
    stages: list[Stage]
    by_stage: dict[str, dict[str, Any]]


def load_generators(track: Tracking, generators_run_id: str, *, only: set[str] | None = None) -> Generators:
    """The stages' generators a `fit_generators` run logged (only the stages named in `only`, if given)."""
    from models.generators.persist import load_generator

    tags = _tags_of(track, generators_run_id, "generators")
    with tempfile.TemporaryDirectory() as tmp:
        root = _download(track, generators_run_id, "generators", Path(tmp))
        plan = [Stage(**s) for s in json.loads((root / "stages.json").read_text())]
        config = TrainingConfig.from_json((root / "training_config.json").read_text())
        by_stage = {
            stage.name: {
                folder.name: load_generator(folder)
                for folder in sorted((root / stage.name).iterdir())
                if folder.is_dir()
            }
            for stage in plan
            if only is None or stage.name in only
        }
    return Generators(tags[DATASET_TAG], config, plan, by_stage)


def package_config(config: TrainingConfig, sources: list[str], **extra: Any) -> RecommenderConfig:
    return RecommenderConfig(
        feature_service=RANKING_SERVICE,
        online_features=tuple(RANKING_FEATURES),
        sources=tuple(sources),
        per_source={name: config.per_source.get(name, 100) for name in sources},
        slate=SlatePolicy(k=config.k, max_per_category=config.max_per_category),
        exclude_seen=config.exclude_seen,
        user_attributes=dict(USER_ATTRIBUTES),
        multi_valued=dict(MULTI_VALUED),
        **extra,
    )


def _with_sources(package: PackagedRecommender, rows: pd.DataFrame, users: pd.DataFrame) -> pd.DataFrame:
    """Labelled rows + the package's source columns (computed for their pairs)."""
    computed = package.source_features(rows[["user_id", "item_id"]], users)
    return pd.concat([rows.drop(columns=[c for c in computed.columns if c in rows.columns]), computed], axis=1)


def stage_rows(data: Dataset, generators: Generators, stage: Stage) -> pd.DataFrame:
    """The labelled rows a stage's generators describe, with their source columns."""
    rows = data.part(stage.split) if stage.split else data.labelled.iloc[:0]
    if stage.rows_from is not None:
        stamp = pd.to_datetime(rows[TIMESTAMP], utc=True)
        request_ts = stamp.groupby(rows["request_id"]).transform("min")
        rows = rows[(request_ts >= _time(stage.rows_from)) & (request_ts < _time(stage.rows_until or ""))]
    package = PackagedRecommender(
        generators=generators.by_stage[stage.name],
        config=package_config(generators.config, list(generators.by_stage[stage.name])),
    )
    return _with_sources(package, rows.reset_index(drop=True), data.users())


# --- step 3: ranker ----------------------------------------------------------------------------------------


def _standard(scores: np.ndarray) -> float:
    spread = float(np.std(scores))
    return spread if spread > 1e-12 else 1.0


def fit_ranker(
    track: Tracking,
    generators_run_id: str,
    *,
    params: Mapping[str, Any] | None = None,
    torch_params: Mapping[str, Any] | None = None,
    parent_run_id: str | None = None,
) -> str:
    """Step 3: the ranker(s) on the carves, chosen on the validation groups; returns the run id.

    `params` / `torch_params` override the configuration's LightGBM / PyTorch ranker parameters
    (e.g. what a Tune search found)."""
    tags = _tags_of(track, generators_run_id, "generators")
    with _step_run(
        track,
        "ranker",
        input_run_id=generators_run_id,
        parent_run_id=parent_run_id,
        tags={DATASET_TAG: tags[DATASET_TAG], GENERATORS_TAG: generators_run_id},
    ) as run:
        # The fits run inside the step run: its duration is the ranker step's time.
        config = load_generators(track, generators_run_id, only=set()).config
        train, valid, features = ranker_frames(track, generators_run_id)
        started = time.perf_counter()
        trained = train_ranker(
            train, valid, features=features, categorical=[], params={**config.ranker_params, **(params or {})}
        )
        lightgbm = trained.ranker(threads=2)
        candidates: dict[str, Any] = {"lightgbm": lightgbm}
        valid_pos = with_positive_groups(valid)
        scores = {"lightgbm": lightgbm.score(valid_pos)}
        notes: dict[str, Any] = {"lightgbm_seconds": time.perf_counter() - started}
        if config.torch_ranker and importlib.util.find_spec("models.torch_ranker") is not None:
            try:
                from models.torch_ranker import TorchRanker

                started = time.perf_counter()
                merged_torch = {**config.torch_params, **(torch_params or {})}
                if uses_ray_train(config):
                    from training.torch_train import fit_torch_ranker_on_ray

                    torch_ranker = fit_torch_ranker_on_ray(
                        with_positive_groups(train), valid_pos, features=features, params=merged_torch
                    )
                else:
                    torch_ranker = TorchRanker().fit(
                        with_positive_groups(train), valid_pos, features=features, categorical=[], params=merged_torch
                    )
                candidates["torch"] = torch_ranker
                scores["torch"] = np.asarray(torch_ranker.score(valid_pos), dtype=np.float64)
                notes["torch_seconds"] = time.perf_counter() - started
            except Exception as exc:  # noqa: BLE001 - the LightGBM ranker still serves; the run says why
                notes["torch_error"] = f"{type(exc).__name__}: {exc}"
        valid_ndcg = {name: mean_ndcg(valid_pos, s) for name, s in scores.items()}
        if "torch" in scores:
            scales = {name: _standard(s) for name, s in scores.items()}
            for weight in (0.25, 0.5, 0.75):
                blend = BlendRanker(
                    {"lightgbm": lightgbm, "torch": candidates["torch"]},
                    weights={"lightgbm": 1 - weight, "torch": weight},
                    scales=scales,
                )
                name = f"blend_{weight:.2f}"
                candidates[name] = blend
                valid_ndcg[name] = mean_ndcg(valid_pos, blend.score(valid_pos))
        # Another ranker serves only when it beats LightGBM by the margin: below it the difference is noise on a
        # few hundred validation groups, and LightGBM alone scores faster and explains its scores.
        best = max(valid_ndcg, key=lambda name: (round(valid_ndcg[name], 6), name == "lightgbm"))
        choice = best if valid_ndcg[best] >= valid_ndcg["lightgbm"] + config.choice_margin else "lightgbm"
        notes["best_on_validation"] = best
        chosen = candidates[choice]
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "ranker"
            save_ranker(chosen, folder / "model")
            (folder / "choice.json").write_text(
                json.dumps({"choice": choice, "valid_ndcg@10": valid_ndcg, **notes}, indent=1, default=str)
            )
            (folder / "features.json").write_text(json.dumps(features))
            mlflow.log_artifacts(str(folder), "ranker")
        mlflow.log_params(
            {
                **{k: _param(v) for k, v in trained.params.items() if k != "verbose"},
                "ranker_choice": choice,
                "ranker_candidates": ",".join(candidates),
                "features": len(features),
            }
        )
        if "torch_error" in notes:
            mlflow.set_tag("fitrec.torch_error", str(notes["torch_error"])[:5000])
        mlflow.log_metrics(
            mlflow_metrics(
                {
                    **{f"valid_ndcg@10_{name}": v for name, v in valid_ndcg.items()},
                    "valid_ndcg@10": valid_ndcg[choice],
                    "best_iteration": float(trained.best_iteration),
                    "train_rows": float(trained.train_rows),
                    "train_groups": float(trained.train_groups),
                    "valid_groups": float(valid_pos["request_id"].nunique()),
                    **{k: v for k, v in notes.items() if isinstance(v, float)},
                }
            )
        )
        return str(run.info.run_id)


def _param(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text[:6000]


@dataclass
class RankerRun:
    dataset_run_id: str
    generators_run_id: str
    ranker: Any
    choice: dict[str, Any]


def load_ranker_run(track: Tracking, ranker_run_id: str) -> RankerRun:
    tags = _tags_of(track, ranker_run_id, "ranker")
    with tempfile.TemporaryDirectory() as tmp:
        folder = _download(track, ranker_run_id, "ranker", Path(tmp))
        ranker = load_ranker(folder / "model")
        choice = json.loads((folder / "choice.json").read_text())
    return RankerRun(tags[DATASET_TAG], tags[GENERATORS_TAG], ranker, choice)


def build_package(track: Tracking, ranker_run_id: str, *, stage: str) -> tuple[PackagedRecommender, Dataset]:
    """The packaged recommender of a ranker run with one stage's generators (`eval` or `final`)."""
    ranker_run = load_ranker_run(track, ranker_run_id)
    generators = load_generators(track, ranker_run.generators_run_id, only={stage})
    data = load_dataset(track, ranker_run.dataset_run_id)
    fitted = generators.by_stage[stage]
    until = next(s.fit_until for s in generators.stages if s.name == stage) or data.window["window_end"]
    config = package_config(
        generators.config,
        list(fitted),
        trained_until=until,
        notes={
            "ranker_choice": ranker_run.choice.get("choice"),
            "valid_ndcg@10": ranker_run.choice.get("valid_ndcg@10"),
        },
    )
    package = PackagedRecommender(
        generators=fitted, ranker=ranker_run.ranker, config=config, items=data.items["category"]
    )
    return package, data


# --- step 4: evaluate --------------------------------------------------------------------------------------


LIST_COLUMNS = ["user_id", "item_id", "rank", "score"]
TOP_LIST_CHUNK = 1000  # users per chunk: about 300 candidates each


def top_lists(
    package: PackagedRecommender,
    users: list[str],
    *,
    store: FeatureStore,
    at: pd.Timestamp,
    users_frame_: pd.DataFrame | None,
    k: int,
) -> pd.DataFrame:
    """Each user's top-k as serving would build it at `at`: candidates, point-in-time features, scores,
    slate policy. `user_id, item_id, rank, score`. Users go in chunks, so memory is bounded by the chunk."""
    parts = [
        _top_lists_chunk(package, users[lo : lo + TOP_LIST_CHUNK], store=store, at=at, users_frame_=users_frame_, k=k)
        for lo in range(0, len(users), TOP_LIST_CHUNK)
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=LIST_COLUMNS)


def _top_lists_chunk(
    package: PackagedRecommender,
    users: list[str],
    *,
    store: FeatureStore,
    at: pd.Timestamp,
    users_frame_: pd.DataFrame | None,
    k: int,
) -> pd.DataFrame:
    candidates = package.candidates(users, users_frame_)
    if candidates.empty:
        return pd.DataFrame(columns=LIST_COLUMNS)
    entity = candidates[["user_id", "item_id"]].assign(**{TIMESTAMP: at})
    featured = historical_features(store, entity, engine="polars")
    frame = pd.concat([featured, candidates.drop(columns=["user_id", "item_id"])], axis=1)
    scores = package.score(frame)
    rows = []
    for _, positions in frame.groupby("user_id", sort=False).indices.items():
        chosen = positions[package.slate(frame["item_id"].to_numpy()[positions], scores[positions], k)]
        rows.append(
            pd.DataFrame(
                {
                    "user_id": frame["user_id"].to_numpy()[chosen],
                    "item_id": frame["item_id"].to_numpy()[chosen],
                    "rank": np.arange(1, len(chosen) + 1),
                    "score": scores[chosen],
                }
            )
        )
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=LIST_COLUMNS)


def evaluate_package(
    package: PackagedRecommender,
    data: Dataset,
    *,
    store: FeatureStore | None,
    oracle: Oracle | None = None,
    k: int = 10,
    seed: int = 0,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Every held-out metric of a package whose generators saw nothing after the cutoff; (metrics, curves)."""
    cutoff = _time(data.window["cutoff"])
    users = data.users()
    test = _with_sources(package, data.part("test"), users)
    known_before = set(data.interactions_before(cutoff)["user_id"])
    counts = data.interactions_before(cutoff).groupby("item_id").size().astype(float)
    metrics: dict[str, float] = {}
    curves: dict[str, Any] = {"k": list(range(1, k + 1))}

    # Slates: the items the logging policy showed, re-ordered.
    model_scores = package.score(test)
    slate_scores: dict[str, np.ndarray] = {
        "model": model_scores,
        "random": np.random.default_rng(seed + 1).random(len(test)),
    }
    if POPULARITY_FEATURE in test.columns:
        slate_scores["popularity"] = popularity_scores(test, column=POPULARITY_FEATURE)
    if oracle is not None:
        slate_scores["oracle"] = oracle_scores(test, oracle=oracle)
    cold = test["user_id"].map(lambda u: u not in known_before).to_numpy()
    new_item = ~test["item_id"].isin(counts.index).to_numpy()
    for name, values in slate_scores.items():
        prefix = "" if name == "model" else f"{name}_"
        for key, value in slate_metrics(test, values, k=k, seed=seed).items():
            metrics[f"{prefix}{key}"] = value
        curves[f"slate_{name}"] = ndcg_curve(test, values, curves["k"], seed=seed)
        if cold.any():
            metrics[f"{prefix}cold_users_ndcg@{k}"] = mean_ndcg(test[cold], values[cold], k=k, seed=seed)
        # New items: groups where a never-used item was engaged with, only those items relevant.
        only_new = test.assign(label=np.where(new_item, test["label"], 0))
        if (only_new["label"] > 0).any():
            metrics[f"{prefix}new_items_ndcg@{k}"] = mean_ndcg(only_new, values, k=k, seed=seed)
    metrics["model_ndcg@10" if k == 10 else f"model_ndcg@{k}"] = metrics[f"ndcg@{k}"]
    groups = test.groupby("request_id", sort=False)["label"].max()
    metrics["eval_groups"] = float(len(groups))
    metrics["eval_groups_with_positive"] = float((groups > 0).sum())
    metrics["eval_rows"] = float(len(test))
    metrics["cold_user_groups"] = float(test.loc[cold, "request_id"].nunique())
    metrics["new_item_positives"] = float(((test["label"] > 0) & new_item).sum())
    if oracle is not None and metrics.get(f"oracle_ndcg@{k}", 0) > 0:
        metrics["model_vs_oracle"] = metrics[f"ndcg@{k}"] / metrics[f"oracle_ndcg@{k}"]

    # Top-k over the whole catalogue, as serving builds it at the cutoff, against what users engaged with after.
    relevant = data.interactions[data.interactions["occurred_at"] >= cutoff][["user_id", "item_id"]].drop_duplicates()
    relevant = relevant[relevant["item_id"].isin(data.items.index)]
    test_users = sorted(relevant["user_id"].unique().tolist())
    curve_k = list(range(1, 2 * k + 1))
    curves["topk_k"] = curve_k
    if store is not None and test_users:
        catalogue = data.items.index.tolist()
        lists: dict[str, pd.DataFrame] = {
            "model": top_lists(package, test_users, store=store, at=cutoff, users_frame_=users, k=2 * k),
            "popularity": popularity_recs(test_users, counts, k=2 * k),
            "random": random_recs(test_users, catalogue, k=2 * k, seed=seed),
        }
        if oracle is not None:
            lists["oracle"] = oracle_recs(test_users, catalogue, oracle=oracle, k=2 * k, at=cutoff.to_pydatetime())
        cold_users = [u for u in test_users if u not in known_before]
        new_relevant = relevant[~relevant["item_id"].isin(counts.index)]
        for name, recs in lists.items():
            prefix = "" if name == "model" else f"{name}_"
            report = topk_report(recs, relevant, k=k, n_items=len(catalogue), item_counts=counts)
            metrics.update({f"{prefix}topk_{key}": value for key, value in report.items() if key != "users"})
            curves[f"topk_{name}"] = topk_curve(recs, relevant, curve_k)
            if cold_users:
                cold_report = topk_report(
                    recs[recs["user_id"].isin(cold_users)],
                    relevant[relevant["user_id"].isin(cold_users)],
                    k=k,
                    n_items=len(catalogue),
                )
                metrics[f"{prefix}cold_users_topk_recall@{k}"] = cold_report[f"recall@{k}"]
                metrics[f"{prefix}cold_users_topk_ndcg@{k}"] = cold_report[f"ndcg@{k}"]
            if len(new_relevant):
                hits = recs[recs["rank"] <= k].merge(new_relevant, on=["user_id", "item_id"])
                metrics[f"{prefix}new_items_topk_recall@{k}"] = len(hits) / len(new_relevant)
            top = recs[recs["rank"] <= k]
            metrics[f"{prefix}topk_new_item_share"] = float((~top["item_id"].isin(counts.index)).mean())
            if oracle is not None:
                # The ground truth, free of the logging policy's exposure: mean true utility of the lists.
                metrics[f"{prefix}topk_utility@{k}"] = mean_utility(top, oracle)
        if oracle is not None and metrics.get(f"oracle_topk_utility@{k}"):
            low, high = metrics.get(f"random_topk_utility@{k}", 0.0), metrics[f"oracle_topk_utility@{k}"]
            if high > low:
                metrics["topk_utility_vs_oracle"] = (metrics[f"topk_utility@{k}"] - low) / (high - low)
        metrics["topk_users"] = float(len(test_users))
        metrics["topk_cold_users"] = float(len(cold_users))
    curves["calibration"] = calibration(test, model_scores).to_dict(orient="list")
    return metrics, curves


def mean_utility(recs: pd.DataFrame, oracle: Oracle) -> float:
    """Mean over users of the mean true utility of their listed items."""
    per_user = [
        float(np.mean(np.asarray(oracle(str(user), rows["item_id"].astype(str).tolist()), dtype=np.float64)))
        for user, rows in recs.groupby("user_id", sort=False)
        if len(rows)
    ]
    return float(np.mean(per_user)) if per_user else float("nan")


def _importance(package: PackagedRecommender, data: Dataset) -> tuple[dict[str, float], str]:
    """The ranker's own feature importance (LightGBM's gain), else the NDCG@10 drop on the held-out slates
    when a feature is shuffled (any ranker)."""
    if hasattr(package.ranker, "importance"):
        return dict(package.ranker.importance()), "gain"
    test = _with_sources(package, data.part("test"), data.users())
    return permutation_importance(test, package.score, package.feature_names), "NDCG@10 drop when shuffled"


def _figures(
    metrics: Mapping[str, float], curves: Mapping[str, Any], importance: Mapping[str, float], *, kind: str = "gain"
) -> None:
    """NDCG@k curves, feature importance and score calibration, logged to the active run."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    colours = {"model": "#2a6f97", "popularity": "#a9a9a9", "random": "#d3d3d3", "oracle": "#e09f3e"}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name, colour in colours.items():
        if f"slate_{name}" in curves:
            left.plot(curves["k"], curves[f"slate_{name}"], marker="o", color=colour, label=name)
        if f"topk_{name}" in curves:
            right.plot(curves["topk_k"], curves[f"topk_{name}"], marker="o", color=colour, label=name)
    left.set(title="shown slates, held-out window", xlabel="k", ylabel="NDCG@k")
    right.set(title="top-k over the catalogue", xlabel="k", ylabel="NDCG@k")
    left.legend()
    right.legend()
    fig.tight_layout()
    mlflow.log_figure(fig, "plots/ndcg_at_k.png")
    plt.close(fig)

    if importance:
        top = sorted(importance.items(), key=lambda kv: kv[1])[-20:]
        fig, ax = plt.subplots(figsize=(7, 6))
        ax.barh([k for k, _ in top], [v for _, v in top], color="#2a6f97")
        ax.set(title="ranker feature importance", xlabel=kind)
        fig.tight_layout()
        mlflow.log_figure(fig, "plots/feature_importance.png")
        plt.close(fig)

    table = curves.get("calibration") or {}
    if table.get("mean_score"):
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(table["mean_score"], table["mean_label"], marker="o", label="mean label")
        ax.plot(table["mean_score"], table["positive_rate"], marker="s", label="share engaged")
        ax.set(title="score calibration (held-out slates, score deciles)", xlabel="mean model score")
        ax.legend()
        fig.tight_layout()
        mlflow.log_figure(fig, "plots/calibration.png")
        plt.close(fig)


def evaluate(
    track: Tracking,
    ranker_run_id: str,
    *,
    store: FeatureStore | None,
    oracle: Oracle | None = None,
    parent_run_id: str | None = None,
) -> tuple[str, dict[str, float]]:
    """Step 4: the ranker with the `eval` generators on the held-out window; returns (run id, metrics)."""
    started = time.perf_counter()
    package, data = build_package(track, ranker_run_id, stage="eval")
    metrics, curves = evaluate_package(package, data, store=store, oracle=oracle, k=package.config.slate.k)
    tags = _tags_of(track, ranker_run_id, "ranker")
    with _step_run(
        track,
        "evaluate",
        input_run_id=ranker_run_id,
        parent_run_id=parent_run_id,
        tags={DATASET_TAG: tags[DATASET_TAG], GENERATORS_TAG: tags[GENERATORS_TAG], RANKER_TAG: ranker_run_id},
    ) as run:
        mlflow.log_params({"oracle": oracle is not None, "topk": store is not None, "k": package.config.slate.k})
        mlflow.log_metrics(mlflow_metrics({**metrics, "seconds": time.perf_counter() - started}))
        mlflow.log_dict({"metrics": metrics, "curves": curves}, "evaluation.json")
        importance, kind = _importance(package, data)
        mlflow.log_dict({"kind": kind, "importance": importance}, "feature_importance.json")
        _figures(metrics, curves, importance, kind=kind)
        return str(run.info.run_id), metrics


# --- step 5: register --------------------------------------------------------------------------------------


def register(
    track: Tracking,
    evaluate_run_id: str,
    *,
    aliases: bool = True,
    parent_run_id: str | None = None,
) -> tuple[str, str, tuple[str, ...]]:
    """Step 5: the `final` package logged as one pyfunc model and registered; (run id, version, aliases)."""
    tags = _tags_of(track, evaluate_run_id, "evaluate")
    evaluated = MlflowClient(tracking_uri=track.tracking_uri).get_run(evaluate_run_id).data.metrics
    package, data = build_package(track, tags[RANKER_TAG], stage="final")
    example = data.part("test").head(5)[["user_id", "item_id", *RANKING_FEATURES]]
    logged = log_recommender(
        tracking_uri=track.tracking_uri,
        artifact_root=track.artifact_root,
        experiment=track.experiment,
        model_name=track.model_name,
        package=package,
        params={"feature_service": package.feature_service, "sources": ",".join(package.config.sources)},
        metrics=evaluated,
        lineage={"dataset_window": data.window, "runs": {k: v for k, v in tags.items() if k.startswith("fitrec.")}},
        input_example=example,
        aliases=aliases,
        run_name="register",
        parent_run_id=parent_run_id or tags.get("mlflow.parentRunId"),
        tags={
            STEP_TAG: "register",
            INPUT_TAG: evaluate_run_id,
            EVALUATE_TAG: evaluate_run_id,
            DATASET_TAG: tags[DATASET_TAG],
            GENERATORS_TAG: tags[GENERATORS_TAG],
            RANKER_TAG: tags[RANKER_TAG],
        },
    )
    return logged.run_id, logged.model_version, logged.aliases


# --- optional: a hyperparameter search between the generators and the ranker --------------------------------


@dataclass(frozen=True)
class TuneOptions:
    """How hard `tune` searches (Ray Tune with ASHA, training.tune); 0 samples skips a ranker's search."""

    lightgbm_samples: int = 12
    torch_samples: int = 8


def tune(
    track: Tracking,
    generators_run_id: str,
    *,
    options: TuneOptions | None = None,
    parent_run_id: str | None = None,
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Search the rankers' parameters on the ranker step's own rows (validation groups only);
    returns (run id, LightGBM parameters, PyTorch ranker parameters) for `fit_ranker`."""
    from training import tune as search

    options = options or TuneOptions()
    tags = _tags_of(track, generators_run_id, "generators")
    train, valid, features = ranker_frames(track, generators_run_id)
    outcomes: dict[str, Any] = {}
    if options.lightgbm_samples:
        outcomes["lightgbm"] = search.tune_lightgbm(
            train, valid, features=features, num_samples=options.lightgbm_samples
        )
    torch_there = importlib.util.find_spec("models.torch_ranker") is not None
    if options.torch_samples and torch_there:
        outcomes["torch_ranker"] = search.tune_torch_ranker(
            train, valid, features=features, num_samples=options.torch_samples
        )
    lightgbm = dict(outcomes["lightgbm"].best_config) if "lightgbm" in outcomes else {}
    torch = search.torch_params(outcomes["torch_ranker"].best_config) if "torch_ranker" in outcomes else {}
    with _step_run(
        track,
        "tune",
        input_run_id=generators_run_id,
        parent_run_id=parent_run_id,
        tags={DATASET_TAG: tags[DATASET_TAG], GENERATORS_TAG: generators_run_id},
    ) as run:
        for name, outcome in outcomes.items():
            mlflow.log_metrics(
                mlflow_metrics(
                    {
                        f"{name}_best_valid_ndcg@10": outcome.best_score,
                        f"{name}_default_valid_ndcg@10": outcome.default_score,
                        f"{name}_trials": float(outcome.trials),
                        f"{name}_stopped_early": float(outcome.stopped_early),
                        f"{name}_seconds": outcome.seconds,
                        f"{name}_improved": float(outcome.improved),
                    }
                )
            )
            mlflow.log_dict(asdict(outcome), f"tune/{name}.json")
        mlflow.log_dict({"lightgbm": lightgbm, "torch": torch}, "tune/best_params.json")
        return str(run.info.run_id), lightgbm, torch


# --- all of them -------------------------------------------------------------------------------------------


def run_steps(
    track: Tracking,
    sources: DatasetSources,
    *,
    config: TrainingConfig | None = None,
    oracle: Oracle | None = None,
    aliases: bool = True,
    progress: Progress | None = None,
    tune_options: TuneOptions | None = None,
) -> StepsResult:
    """Every step under one parent run; the parent logs the configuration, the run ids and the metrics.
    With `tune_options`, a Ray Tune search (a `tune` run) hands its parameters to the ranker step."""
    config = config or TrainingConfig()

    def step(done: int) -> None:
        if progress is not None:
            progress(STEPS[done] if done < len(STEPS) else "done", done, len(STEPS))

    started = time.perf_counter()
    with tracking(track.tracking_uri) as client:
        experiment_id = ensure_experiment(client, name=track.experiment, artifact_root=track.artifact_root)
        parent = client.create_run(experiment_id, run_name="train", tags={STEP_TAG: "train"}).info.run_id
    runs: dict[str, str] = {}
    status = "FAILED"
    try:
        step(0)
        runs["dataset"] = build_dataset(track, sources, config=config, parent_run_id=parent)
        step(1)
        runs["generators"] = fit_generators(track, runs["dataset"], config=config, parent_run_id=parent)
        step(2)
        params: dict[str, Any] = {}
        torch_params: dict[str, Any] = {}
        if tune_options is not None:
            runs["tune"], params, torch_params = tune(
                track, runs["generators"], options=tune_options, parent_run_id=parent
            )
        runs["ranker"] = fit_ranker(
            track, runs["generators"], params=params, torch_params=torch_params, parent_run_id=parent
        )
        step(3)
        store = sources.store
        runs["evaluate"], metrics = evaluate(track, runs["ranker"], store=store, oracle=oracle, parent_run_id=parent)
        step(4)
        runs["register"], version, given = register(track, runs["evaluate"], aliases=aliases, parent_run_id=parent)
        step(5)
        with tracking(track.tracking_uri), mlflow.start_run(run_id=parent):
            mlflow.log_params({k: _param(v) for k, v in asdict(config).items()})
            mlflow.set_tags({f"fitrec.{name}_run_id": run_id for name, run_id in runs.items()})
            mlflow.set_tag("fitrec.model_version", version)
            mlflow.log_metrics(mlflow_metrics({**metrics, "training_seconds": time.perf_counter() - started}))
        status = "FINISHED"
    finally:
        MlflowClient(tracking_uri=track.tracking_uri).set_terminated(parent, status)
    lineage = {**dict(sources.lineage), "runs": runs, "parent_run_id": parent}
    return StepsResult(parent, runs, version, given, metrics, lineage)


# --- re-evaluating a registered model --------------------------------------------------------------------


def evaluate_model(
    track: Tracking,
    model_uri: str,
    dataset_run_id: str,
    *,
    store: FeatureStore | None,
    oracle: Oracle | None = None,
    parent_run_id: str | None = None,
) -> tuple[str, dict[str, float]]:
    """Evaluate a logged packaged recommender (`runs:/…/recommender`, `models:/name/version`) on a dataset
    run's held-out window; returns (run id, metrics). A model whose generators saw that window (trained
    after its cutoff) scores too well: the run is tagged `fitrec.leaky` and the metric `leaky` is 1.
    `parent_run_id` nests the run (e.g. under a retraining pipeline's evaluate step)."""
    import mlflow.pyfunc

    started = time.perf_counter()
    with tracking(track.tracking_uri):
        package = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
    data = load_dataset(track, dataset_run_id)
    metrics, curves = evaluate_package(package, data, store=store, oracle=oracle, k=package.config.slate.k)
    until = package.config.trained_until
    leaky = until is not None and _time(until) > _time(data.window["cutoff"])
    metrics["leaky"] = float(leaky)
    tags = {DATASET_TAG: dataset_run_id, "fitrec.evaluated_model": model_uri, "fitrec.leaky": str(leaky).lower()}
    with _step_run(track, "evaluate", input_run_id=None, parent_run_id=parent_run_id, tags=tags) as run:
        mlflow.log_params({"oracle": oracle is not None, "topk": store is not None, "model_uri": model_uri})
        mlflow.log_metrics(mlflow_metrics({**metrics, "seconds": time.perf_counter() - started}))
        mlflow.log_dict({"metrics": metrics, "curves": curves}, "evaluation.json")
        importance, kind = _importance(package, data)
        _figures(metrics, curves, importance, kind=kind)
        return str(run.info.run_id), metrics


def step_of(track: Tracking, run_id: str) -> str | None:
    """The step a run was (`dataset`, …, `register`, `train` for a parent), None for other runs."""
    return MlflowClient(tracking_uri=track.tracking_uri).get_run(run_id).data.tags.get(STEP_TAG)


def ranker_frames(track: Tracking, generators_run_id: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The ranker step's training and validation rows (with their source columns) and feature names, for
    hyperparameter searches (training.tune) that then hand their parameters to `fit_ranker`."""
    tags = _tags_of(track, generators_run_id, "generators")
    data = load_dataset(track, tags[DATASET_TAG])
    generators = load_generators(track, generators_run_id)
    train = pd.concat(
        [stage_rows(data, generators, s) for s in generators.stages if s.split == "train"], ignore_index=True
    )
    valid = stage_rows(data, generators, next(s for s in generators.stages if s.name == "valid"))
    features = package_config(generators.config, list(generators.by_stage["final"])).features
    return train, valid, features
