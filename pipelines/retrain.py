"""`fitrec pipeline retrain`: validate → materialize → training set → train → evaluate → gate, one MLflow tree.

One parent run (`pipeline`) holds a child run per step; the training steps' own runs (training.steps) nest
under the step that made them. Each step but the gate fingerprints its inputs (the event log's size and
newest receipt, the offline store's watermark and counts, the configuration, the run ids and versions it
reads); when a finished run of the same step has the same fingerprint, the step is not redone: its run is
recorded as reused (`fitrec.reused_from`) with the earlier run's outputs.

The gate promotes the new model only when no data check failed and it beats the `champion` on the same
held-out window by the configured margin. The window is fresh when it can be: the labelled requests after
the champion's training data, so neither model saw it. The decision and its reason are tags of the
pipeline run and of the new model version. A named lock keeps two runs from overlapping.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from functools import cache
from typing import Any

import pandas as pd
import sqlalchemy as sa
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipelines.config import PipelineSettings
from pipelines.locks import exclusive
from platform_api.db import make_engine
from platform_api.events.tables import EventLog
from training.registry import CHAMPION, ROLLED_BACK_TAG, ensure_experiment, mlflow_metrics, promote
from training.steps import STEP_TAG, Tracking, TrainingConfig, TuneOptions

LOCK_NAME = "pipeline-retrain"
STEPS = ("validate", "materialize", "training_set", "train", "evaluate", "gate")
PIPELINE_STEP_TAG, FINGERPRINT_TAG, REUSED_TAG = "fitrec.pipeline_step", "fitrec.fingerprint", "fitrec.reused_from"
OUT = "fitrec.out."  # a step's outputs are tags with this prefix, so a reusing run can copy them
DECISION_TAG, REASON_TAG = "fitrec.gate.decision", "fitrec.gate.reason"
# progress(step, steps_done, steps_total), as the other pipelines report it.
Progress = Callable[[str, int, int], None]


class RetrainBusy(RuntimeError):
    """Another retraining run holds the lock."""


@dataclass(frozen=True)
class StepRecord:
    name: str
    run_id: str
    reused_from: str | None
    seconds: float
    outputs: dict[str, str]


@dataclass(frozen=True)
class RetrainResult:
    pipeline_run_id: str
    promoted: bool
    reason: str
    metric: str  # MLflow's spelling, e.g. ndcg_at_10
    challenger_version: str | None
    champion_before: str | None
    champion_after: str | None
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float]  # on the same held-out window; empty when there was none to evaluate
    data_check_passed: bool
    steps: tuple[StepRecord, ...]


def fingerprint(step: str, inputs: Mapping[str, Any]) -> str:
    text = json.dumps({"step": step, **inputs}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class _Pipeline:
    """The parent run and its step runs (client API only: the training steps open fluent runs inside)."""

    def __init__(self, settings: PipelineSettings, track: Tracking) -> None:
        self.settings, self.track = settings, track
        self.client = MlflowClient(tracking_uri=track.tracking_uri, registry_uri=track.tracking_uri)
        self.experiment_id = ensure_experiment(self.client, name=track.experiment, artifact_root=track.artifact_root)
        self.run_id = self.client.create_run(
            self.experiment_id, run_name="pipeline", tags={STEP_TAG: "pipeline", "fitrec.model_name": track.model_name}
        ).info.run_id
        self.records: list[StepRecord] = []
        # Under `mlflow run`, the project's run id is in the environment and the first fluent run (a training
        # step's) would resume it: the project run is linked to this tree by tags instead.
        project_run = os.environ.pop("MLFLOW_RUN_ID", None)
        if project_run:
            self.client.set_tag(self.run_id, "fitrec.project_run_id", project_run)
            self.client.set_tag(project_run, "fitrec.pipeline_run_id", self.run_id)

    def _earlier(self, step: str, print_: str) -> Any | None:
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{PIPELINE_STEP_TAG}` = '{step}' and tags.`{FINGERPRINT_TAG}` = '{print_}' "
            "and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return found[0] if found else None

    def step(
        self, name: str, inputs: Mapping[str, Any] | None, work: Callable[[str], Mapping[str, Any]]
    ) -> dict[str, str]:
        """Run `work(step_run_id) -> outputs` in a child run, or reuse an earlier run with the same inputs
        (`inputs` None: never reused). Outputs are strings; numbers among them are logged as metrics too."""
        started = time.perf_counter()
        tags = {"mlflow.parentRunId": self.run_id, PIPELINE_STEP_TAG: name, STEP_TAG: f"pipeline.{name}"}
        print_ = fingerprint(name, inputs) if inputs is not None else None
        if print_:
            tags[FINGERPRINT_TAG] = print_
        earlier = self._earlier(name, print_) if print_ else None
        if earlier is not None:
            origin = earlier.data.tags.get(REUSED_TAG, earlier.info.run_id)
            outputs = {k.removeprefix(OUT): v for k, v in earlier.data.tags.items() if k.startswith(OUT)}
            run_id = self.client.create_run(
                self.experiment_id, run_name=name, tags={**tags, REUSED_TAG: origin}
            ).info.run_id
            self._outputs(run_id, outputs)
            self.client.set_terminated(run_id, "FINISHED")
        else:
            run_id = self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id
            status = "FAILED"
            try:
                outputs = {k: str(v) for k, v in work(run_id).items()}
                self._outputs(run_id, outputs)
                status = "FINISHED"
            finally:
                self.client.set_terminated(run_id, status)
            origin = None
        self.records.append(StepRecord(name, run_id, origin, time.perf_counter() - started, outputs))
        return outputs

    def _outputs(self, run_id: str, outputs: Mapping[str, str]) -> None:
        for key, value in outputs.items():
            self.client.set_tag(run_id, OUT + key, value[:5000])
        numbers: dict[str, float] = {}
        for key, text in outputs.items():
            try:
                numbers[key] = float(text)
            except ValueError:
                continue
        for key, number in mlflow_metrics(numbers).items():
            self.client.log_metric(run_id, key, number)


def _alias(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def _event_log_state(settings: PipelineSettings) -> dict[str, Any]:
    """Size and newest receipt of the event log: what the validate step reads."""
    engine = make_engine(settings.platform().sqlalchemy_url)
    t = EventLog.__table__.c
    try:
        with engine.connect() as conn:
            count, newest = conn.execute(sa.select(sa.func.count(), sa.func.max(t.received_at))).one()
    finally:
        engine.dispose()
    return {"events": int(count), "newest_received_at": str(newest)}


def _offline_state(settings: PipelineSettings) -> dict[str, Any]:
    """The validated event store's watermark and counts per type: what materialize and training read."""
    from pipelines.event_export import event_store

    store = event_store(settings)
    try:
        return {"watermark": str(store.read_watermark()), "counts": store.counts()}
    finally:
        store.close()


def _last_passing_check(pipe: _Pipeline) -> datetime | None:
    """The newest receipt the last passing data check covered: the next check covers what came after."""
    found = pipe.client.search_runs(
        [pipe.experiment_id],
        filter_string=f"tags.`{PIPELINE_STEP_TAG}` = 'validate' and tags.`{OUT}check` = 'passed' "
        "and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    value = found[0].data.tags.get(f"{OUT}checked_until") if found else None
    return datetime.fromisoformat(value) if value and value != "None" else None


def _validate(settings: PipelineSettings, since: datetime | None) -> dict[str, Any]:
    """Export new events through validation, then the data check: the share of the events received
    since the last passing check that went to quarantine, against `max_quarantine_share`."""
    import polars as pl

    from pipelines.event_export import event_store, export_events

    exported = export_events(settings)
    store = event_store(settings)
    try:
        handled = len(store.handled_ids(received_since=since))
        quarantine = store.read_quarantine()
        until = store.read_watermark()
    finally:
        store.close()
    if since is not None:
        quarantine = quarantine.filter(pl.col("received_at") >= since)
    share = quarantine.height / handled if handled else 0.0
    failing = Counter(reason for reasons in quarantine["reasons"].to_list() for reason in reasons)
    passed = share <= settings.max_quarantine_share
    top = ", ".join(f"{name} {count}" for name, count in failing.most_common(3))
    window = f"since {since.isoformat()}" if since else "in the whole log"
    return {
        "export_run": exported.run_id,
        "received": exported.received,
        "stored": exported.stored,
        "quarantined": exported.quarantined,
        "checked_events": handled,
        "checked_quarantined": quarantine.height,
        "quarantine_share": round(share, 6),
        "check": "passed" if passed else "failed",
        "check_reason": (
            f"{share:.1%} of the {handled:,} events received {window} were quarantined "
            f"(limit {settings.max_quarantine_share:.1%})" + (f": {top}" if top else "")
        ),
        "checked_until": until.isoformat() if until else "None",
        "report": str(exported.report_path),
    }


def _holdout(settings: PipelineSettings, labels_end: pd.Timestamp, labels_start: pd.Timestamp, until: Any) -> float:
    """Days held out: from the champion's training data on (fresh for both models) when that window is at
    least `min_fresh_holdout_days`, at most half the labelled window; else 0 (training's default split)."""
    if until is None:
        return 0.0
    trained = pd.Timestamp(until)
    trained = trained.tz_convert("UTC") if trained.tzinfo else trained.tz_localize("UTC")
    fresh = (labels_end - trained).total_seconds() / 86400 - 1 / 1440  # a minute inside: the champion never saw it
    if fresh < settings.min_fresh_holdout_days:
        return 0.0
    return min(fresh, (labels_end - labels_start).total_seconds() / 86400 / 2)


def run_retrain(
    settings: PipelineSettings,
    *,
    tune: bool = False,
    margin: float | None = None,
    wait_s: float = 0.0,
    config: TrainingConfig | None = None,
    tune_options: TuneOptions | None = None,
    progress: Progress | None = None,
) -> RetrainResult:
    """One retraining pipeline run under the lock `pipeline-retrain` (RetrainBusy when another run holds
    it for longer than `wait_s`). `margin` defaults to settings.promote_margin; `config` to training's
    defaults; `tune` searches the rankers' parameters (Ray Tune) before the ranker step."""
    engine = make_engine(settings.platform().sqlalchemy_url)
    try:
        with exclusive(engine, LOCK_NAME, lock_dir=settings.lock_dir, wait_s=wait_s) as held:
            if not held:
                raise RetrainBusy(
                    f"another retraining run holds the lock '{LOCK_NAME}' (waited {wait_s:g} s); try again later"
                )
            return _run(
                settings,
                margin=settings.promote_margin if margin is None else margin,
                config=config or TrainingConfig(),
                tune_options=(tune_options or TuneOptions()) if tune else None,
                progress=progress,
            )
    finally:
        engine.dispose()


def _run(
    settings: PipelineSettings,
    *,
    margin: float,
    config: TrainingConfig,
    tune_options: TuneOptions | None,
    progress: Progress | None,
) -> RetrainResult:
    from pipelines.build_features import build_features
    from pipelines.train import dataset_sources, tracking_of
    from training.datasets import build_labels
    from training.steps import build_dataset, evaluate, evaluate_model, fit_generators, fit_ranker, register
    from training.steps import tune as tune_step

    def report(done: int) -> None:
        if progress is not None:
            progress(STEPS[done] if done < len(STEPS) else "done", done, len(STEPS))

    track = tracking_of(settings)
    pipe = _Pipeline(settings, track)
    name, metric = settings.model_name, mlflow_metrics({settings.promote_metric: 0.0}).popitem()[0]
    champion = _alias(pipe.client, name, CHAMPION)
    status = "FAILED"
    try:
        pipe.client.log_param(pipe.run_id, "promote_margin", margin)
        pipe.client.log_param(pipe.run_id, "promote_metric", metric)
        pipe.client.log_param(pipe.run_id, "training_config", config.to_json()[:6000])
        if champion:
            pipe.client.set_tag(pipe.run_id, "fitrec.champion_before", champion)

        report(0)
        since = _last_passing_check(pipe)
        # Keyed by the log alone: the same log again reuses its verdict (a failed check keeps blocking).
        checked = pipe.step(
            "validate",
            {**_event_log_state(settings), "limit": settings.max_quarantine_share},
            lambda _: _validate(settings, since),
        )
        passed = checked["check"] == "passed"
        challenger: str | None = None
        challenger_metrics: dict[str, float] = {}
        champion_metrics: dict[str, float] = {}
        if passed:
            report(1)
            offline = _offline_state(settings)
            pipe.step(
                "materialize",
                {**offline, "project": settings.feast_project, "online": "redis" if settings.redis_url else "sqlite"},
                lambda _: _materialize(build_features(settings, export=False)),
            )

            report(2)

            @cache
            def inputs() -> tuple[Any, Any]:
                """(dataset sources, oracle): read only when a step runs, never for reused ones."""
                return dataset_sources(settings)

            def training_set(run_id: str) -> dict[str, Any]:
                sources = inputs()[0]
                trained_until = _trained_until(settings, champion) if champion else None
                request_ts = build_labels(sources.events).groupby("request_id", sort=False)["event_timestamp"].min()
                holdout = _holdout(settings, request_ts.max(), request_ts.min(), trained_until)
                split = replace(config, holdout_days=holdout or config.holdout_days)
                return {
                    "dataset_run_id": build_dataset(track, sources, config=split, parent_run_id=run_id),
                    "fresh_holdout": bool(holdout),
                    "holdout_days": round(holdout, 4),
                    "champion_trained_until": str(trained_until),
                }

            # Keyed by the data and the configuration, not the champion: the same data is not split again
            # after its model was promoted; its window was fresh for the champion of the time.
            made = pipe.step("training_set", {**offline, "holdout_days": config.holdout_days}, training_set)
            dataset = made["dataset_run_id"]

            report(3)

            def train(run_id: str) -> dict[str, Any]:
                generators = fit_generators(track, dataset, config=config, parent_run_id=run_id)
                params: dict[str, Any] = {}
                torch_params: dict[str, Any] = {}
                if tune_options is not None:
                    _, params, torch_params = tune_step(track, generators, options=tune_options, parent_run_id=run_id)
                ranker = fit_ranker(track, generators, params=params, torch_params=torch_params, parent_run_id=run_id)
                sources, oracle = inputs()
                evaluated, _ = evaluate(track, ranker, store=sources.store, oracle=oracle, parent_run_id=run_id)
                registered, version, aliases = register(track, evaluated, parent_run_id=run_id)
                return {
                    "model_version": version,
                    "aliases": ",".join(aliases),
                    "evaluate_run_id": evaluated,
                    "register_run_id": registered,
                }

            trained = pipe.step(
                "train",
                {
                    "dataset_run_id": dataset,
                    "config": asdict(config),
                    "tune": asdict(tune_options) if tune_options else None,
                },
                train,
            )
            challenger = trained["model_version"]
            challenger_metrics = dict(pipe.client.get_run(trained["evaluate_run_id"]).data.metrics)

            report(4)

            def compare(run_id: str) -> dict[str, Any]:
                if champion is None or champion == challenger:
                    return {"champion_evaluated": False}
                sources, oracle = inputs()
                evaluated, _ = evaluate_model(
                    track,
                    f"models:/{name}/{champion}",
                    dataset,
                    store=sources.store,
                    oracle=oracle,
                    parent_run_id=run_id,
                )
                return {"champion_evaluated": True, "champion_evaluate_run_id": evaluated}

            compared = pipe.step(
                "evaluate", {"dataset_run_id": dataset, "challenger": challenger, "champion": champion}, compare
            )
            if compared.get("champion_evaluate_run_id"):
                champion_metrics = dict(pipe.client.get_run(compared["champion_evaluate_run_id"]).data.metrics)
            for prefix, values in (("challenger_", challenger_metrics), ("champion_", champion_metrics)):
                if metric in values:
                    pipe.client.log_metric(pipe.run_id, prefix + metric, values[metric])

        report(5)
        verdict: dict[str, Any] = {}

        def gate(_: str) -> dict[str, Any]:
            promoted, reason = _decide(
                passed=passed,
                check_reason=checked["check_reason"],
                champion=champion,
                challenger=challenger,
                rolled_back=_rolled_back(pipe.client, name, challenger),
                min_fresh_days=settings.min_fresh_holdout_days,
                metric=metric,
                margin=margin,
                challenger_metrics=challenger_metrics,
                champion_metrics=champion_metrics,
            )
            if promoted and challenger is not None:
                promote(tracking_uri=track.tracking_uri, name=name, version=challenger)
            verdict.update(promoted=promoted, reason=reason)
            return {"decision": "promoted" if promoted else "kept", "reason": reason}

        pipe.step("gate", None, gate)
        after = _alias(pipe.client, name, CHAMPION)
        decision = "promoted" if verdict["promoted"] else "kept"
        tags = {
            DECISION_TAG: decision,
            REASON_TAG: verdict["reason"][:5000],
            "fitrec.data_check": checked["check"],
            "fitrec.champion_after": str(after),
        }
        if challenger:
            tags["fitrec.challenger_version"] = challenger
        if challenger and challenger != champion:  # a version judged again only as champion keeps its record
            for key, value in {**tags, "fitrec.gate.pipeline_run_id": pipe.run_id}.items():
                pipe.client.set_model_version_tag(name, challenger, key, value)
        for key, value in tags.items():
            pipe.client.set_tag(pipe.run_id, key, value)
        report(6)
        status = "FINISHED"
    finally:
        pipe.client.set_terminated(pipe.run_id, status)
    return RetrainResult(
        pipeline_run_id=pipe.run_id,
        promoted=bool(verdict["promoted"]),
        reason=str(verdict["reason"]),
        metric=metric,
        challenger_version=challenger,
        champion_before=champion,
        champion_after=after,
        challenger_metrics=challenger_metrics,
        champion_metrics=champion_metrics,
        data_check_passed=passed,
        steps=tuple(pipe.records),
    )


def _rolled_back(client: MlflowClient, name: str, version: str | None) -> str | None:
    if version is None:
        return None
    return client.get_model_version(name, version).tags.get(ROLLED_BACK_TAG)


def _materialize(report: Any) -> dict[str, Any]:
    tables = ", ".join(f"{name} {rows}" for name, rows in report.rows_per_table.items())
    return {"events": report.events, "tables": tables, "materialized_until": report.materialized_until.isoformat()}


def _trained_until(settings: PipelineSettings, version: str) -> str | None:
    """The newest interaction the champion's generators saw (its packaged configuration says)."""
    import mlflow.artifacts

    from training.registry import tracking

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    run_id = client.get_model_version(settings.model_name, version).run_id
    with tracking(settings.tracking_uri):
        try:
            config = mlflow.artifacts.load_text(f"runs:/{run_id}/recommender_config.json")
        except MlflowException:
            return None
    value = json.loads(config).get("trained_until")
    return str(value) if value else None


def _decide(
    *,
    passed: bool,
    check_reason: str,
    champion: str | None,
    challenger: str | None,
    rolled_back: str | None,
    min_fresh_days: float,
    metric: str,
    margin: float,
    challenger_metrics: Mapping[str, float],
    champion_metrics: Mapping[str, float],
) -> tuple[bool, str]:
    """(promote?, why)."""
    if not passed:
        return False, f"data check failed: {check_reason}"
    if challenger is None:
        return False, "no new model"
    if champion is None:
        return True, f"no champion to beat: version {challenger} serves"
    if champion == challenger:
        return False, f"version {challenger} is already the champion (nothing new since it was promoted)"
    if rolled_back:
        return False, (
            f"version {challenger} was rolled back from at {rolled_back}: the gate does not promote it again "
            f"(a person can: fitrec model promote {challenger})"
        )
    if champion_metrics.get("leaky"):
        # Its generators saw the held-out requests, which shifts its source features away from what its
        # ranker learned on: its figures mean something else than the new model's (measured lower here).
        return False, (
            f"no fresh held-out window: the champion (version {champion}) was trained on part of it, so the two "
            f"are not judged alike; the gate waits for {min_fresh_days:g}+ days of requests after its training data"
        )
    new, old = challenger_metrics.get(metric), champion_metrics.get(metric)
    if new is None or old is None:
        return False, f"{metric} missing for the {'challenger' if new is None else 'champion'}"
    gain = new - old
    figures = f"{metric} {new:.4f} (version {challenger}) vs {old:.4f} (champion {champion}), {gain:+.4f}"
    if gain >= margin:
        return True, f"better by at least the margin {margin:g}: {figures}"
    return False, f"not better by the margin {margin:g}: {figures}"
