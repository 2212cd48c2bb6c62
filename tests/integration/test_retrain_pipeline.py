"""The retraining pipeline on the embedded default with a real MLflow store: the gate promotes a better
model and keeps the champion against a worse one, a failed data check blocks promotion, two runs never
overlap, a second run with unchanged inputs reuses the steps, rollback serves `previous` again (and the
gate does not undo it), and the MLproject entry point runs it.

The tests share one world and run in file order: the champion each one starts from is the one the test
before it left (each checks it first). Events arrive in three parts (the days before the first champion
was trained, then two later stretches of FRESH_DAYS), so each comparison has a fresh held-out window. A
model is made worse by inverting LightGBM's label gains (`label_gain`): it learns to put the least
engaging items first.
"""

import os
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from pipelines.config import PipelineSettings
from pipelines.retrain import LOCK_NAME, RetrainBusy, run_retrain
from training.registry import CHAMPION, PREVIOUS
from training.steps import TrainingConfig

pytestmark = pytest.mark.integration
FAST = TrainingConfig(two_tower=False, torch_ranker=False, carves=1)  # the PyTorch models have tests of their own
INVERTED = {"label_gain": [7, 3, 1, 0]}  # engagement labels 0..3, gains reversed: a deliberately bad ranker
FRESH_DAYS = 8


def _ingest(platform: Any, events: list[dict[str, Any]]) -> None:
    from platform_api.events.ingest import ingest

    for lo in range(0, len(events), 5000):
        with platform.sessions() as session:
            assert not ingest(session, raw=events[lo : lo + 5000]).rejected
            session.commit()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """120 simulated users over 30 days. The champion (version 1, a bad ranker) was trained on the events
    before the last 2 × FRESH_DAYS days; the next FRESH_DAYS arrive after it, the last ones are kept back
    (`world["later"]`) for a test to ingest."""
    from pipelines.build_features import build_features
    from pipelines.train import run_training
    from platform_api.catalogue.service import list_items, seed_catalogue
    from platform_api.runtime import open_platform
    from training.simulator import simulate

    data_dir = tmp_path_factory.mktemp("retrain")
    settings = PipelineSettings(FITREC_DATA_DIR=data_dir, DATABASE_URL=None, REDIS_URL=None, MLFLOW_TRACKING_URI=None)
    platform = open_platform(settings.platform())
    with platform.sessions() as session:
        seed_catalogue(session)
        items = list_items(session)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    sim = simulate(items, users=120, days=30, seed=4, end=end)
    parts: list[list[dict[str, Any]]] = [[], [], []]
    for batch in sim.iter_batches(5000):
        for event in batch:
            days_before_end = (end - datetime.fromisoformat(event["occurred_at"])) / timedelta(days=1)
            parts[0 if days_before_end > 2 * FRESH_DAYS else 1 if days_before_end > FRESH_DAYS else 2].append(event)
    _ingest(platform, parts[0])
    build_features(settings)
    first = run_training(settings, config=replace(FAST, ranker_params=INVERTED))
    assert first.aliases == ("challenger", "champion")
    _ingest(platform, parts[1])
    return {"settings": settings, "platform": platform, "items": [i.item_id for i in items], "later": parts[2]}


def _champion(settings: PipelineSettings, alias: str = CHAMPION) -> str:
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    return str(client.get_model_version_by_alias(settings.model_name, alias).version)


def test_a_second_run_waits_or_exits_while_one_holds_the_lock(world: dict[str, Any]) -> None:
    from pipelines.cli import app
    from pipelines.config import WorkerSettings
    from pipelines.jobs import scheduled_jobs
    from pipelines.locks import exclusive
    from platform_api.db import make_engine

    settings: PipelineSettings = world["settings"]
    engine = make_engine(settings.platform().sqlalchemy_url)
    with exclusive(engine, LOCK_NAME, lock_dir=settings.lock_dir) as held:
        assert held
        with pytest.raises(RetrainBusy, match="another retraining run holds the lock"):
            run_retrain(settings, config=FAST)
        started = datetime.now(UTC)
        with pytest.raises(RetrainBusy, match="waited 1 s"):
            run_retrain(settings, config=FAST, wait_s=1.0)
        assert datetime.now(UTC) - started >= timedelta(seconds=1)
        env = {"FITREC_DATA_DIR": str(settings.data_dir)}
        busy = CliRunner().invoke(app, ["pipeline", "retrain", "--no-two-tower"], env=env)
        assert busy.exit_code == 3 and "not started" in busy.output
        # The worker's scheduled job skips (a recorded result, not a failure).
        worker = WorkerSettings(FITREC_DATA_DIR=settings.data_dir, DATABASE_URL=None, MLFLOW_TRACKING_URI=None)
        outcome = scheduled_jobs(worker)["retrain"][1](worker)
        assert outcome is not None and "holds the lock" in str(outcome["skipped"])
    engine.dispose()
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiment = client.get_experiment_by_name(settings.model_name)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.`fitrec.step` = 'pipeline'")
    assert runs == []  # a run that did not get the lock left nothing behind
    assert _champion(settings) == "1"


def test_on_postgresql_the_lock_is_an_advisory_lock(pg_url: str, tmp_path: Path) -> None:
    """Runs on several hosts share the database: the lock is held there, not in a file of the data folder."""
    from pipelines.locks import exclusive
    from platform_api.db import make_engine

    settings = PipelineSettings(FITREC_DATA_DIR=tmp_path, DATABASE_URL=pg_url, REDIS_URL=None, MLFLOW_TRACKING_URI=None)
    engine = make_engine(settings.platform().sqlalchemy_url)
    with exclusive(engine, LOCK_NAME, lock_dir=settings.lock_dir) as held:
        assert held
        with pytest.raises(RetrainBusy):
            run_retrain(settings, config=FAST)
    engine.dispose()
    assert not settings.lock_dir.exists()


def test_a_better_model_is_promoted_and_the_old_champion_kept_as_previous(world: dict[str, Any]) -> None:
    settings: PipelineSettings = world["settings"]
    assert _champion(settings) == "1"
    steps: list[str] = []
    result = run_retrain(settings, config=FAST, progress=lambda step, done, total: steps.append(step))
    assert result.data_check_passed and result.promoted, result.reason
    assert (result.champion_before, result.challenger_version, result.champion_after) == ("1", "2", "2")
    assert _champion(settings) == "2" and _champion(settings, PREVIOUS) == "1"
    new, old = result.challenger_metrics["ndcg_at_10"], result.champion_metrics["ndcg_at_10"]
    assert new > old + settings.promote_margin and "better by at least the margin" in result.reason
    assert steps == ["validate", "materialize", "training_set", "train", "evaluate", "gate", "done"]

    # One tree: the pipeline run, a child per step, the training steps nested under theirs.
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    children = {r.name: r.run_id for r in result.steps}
    assert list(children) == ["validate", "materialize", "training_set", "train", "evaluate", "gate"]
    for run_id in children.values():
        assert client.get_run(run_id).data.tags["mlflow.parentRunId"] == result.pipeline_run_id
    training_set = next(r for r in result.steps if r.name == "training_set")
    # The held-out window is fresh: the days after the champion's training data, which neither model saw.
    assert training_set.outputs["fresh_holdout"] == "True"
    assert float(training_set.outputs["holdout_days"]) == pytest.approx(FRESH_DAYS, abs=1.0)
    assert result.champion_metrics["leaky"] == 0.0
    nested = client.search_runs(
        [client.get_run(result.pipeline_run_id).info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{children['train']}'",
    )
    assert {r.info.run_name for r in nested} == {"generators", "ranker", "evaluate", "register"}
    parent = client.get_run(result.pipeline_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["fitrec.gate.decision"] == "promoted" and parent.data.tags["fitrec.champion_after"] == "2"
    assert parent.data.metrics["challenger_ndcg_at_10"] == pytest.approx(new)
    version = client.get_model_version(settings.model_name, "2")
    assert version.tags["fitrec.gate.decision"] == "promoted"
    assert version.tags["fitrec.gate.pipeline_run_id"] == result.pipeline_run_id

    # Unchanged data: the steps up to training are reused from this run, nothing retrained; the evaluation
    # has a new input (the champion moved) and the gate always decides afresh.
    again = run_retrain(settings, config=FAST)
    reused = {r.name: r.reused_from for r in again.steps}
    assert reused == {**{name: children[name] for name in list(children)[:4]}, "evaluate": None, "gate": None}
    assert again.challenger_version == "2" and not again.promoted and "already the champion" in again.reason
    assert len(client.search_model_versions(f"name='{settings.model_name}'")) == 2
    assert client.get_model_version(settings.model_name, "2").tags["fitrec.gate.decision"] == "promoted"


def test_rollback_serves_previous_again_and_the_gate_leaves_it(world: dict[str, Any]) -> None:
    from pipelines.cli import app

    settings: PipelineSettings = world["settings"]
    assert (_champion(settings), _champion(settings, PREVIOUS)) == ("2", "1")
    env = {"FITREC_DATA_DIR": str(settings.data_dir)}
    rolled = CliRunner().invoke(app, ["model", "rollback"], env=env)
    assert rolled.exit_code == 0 and "champion: version 1 (was 2)" in rolled.output
    assert _champion(settings) == "1"
    assert CliRunner().invoke(app, ["model", "rollback"], env=env).exit_code == 1  # no previous left
    # The next scheduled run trains nothing new (the same data: version 2 again), and version 2 beats the
    # champion, but it was rolled back from: the gate leaves that to a person.
    result = run_retrain(settings, config=FAST)
    assert result.challenger_version == "2" and not result.promoted
    assert result.challenger_metrics["ndcg_at_10"] > result.champion_metrics["ndcg_at_10"]
    assert "was rolled back from" in result.reason and "fitrec model promote 2" in result.reason
    assert _champion(settings) == "1"
    # A person can.
    promoted = CliRunner().invoke(app, ["model", "promote", "2"], env=env)
    assert promoted.exit_code == 0 and (_champion(settings), _champion(settings, PREVIOUS)) == ("2", "1")


def test_a_worse_model_is_not_promoted_and_the_champion_keeps_serving(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.cli import app, console

    settings: PipelineSettings = world["settings"]
    assert _champion(settings) == "2"
    monkeypatch.setattr(console, "width", 200)
    _ingest(world["platform"], world["later"])  # days the champion never saw: a fresh held-out window
    result = run_retrain(settings, config=replace(FAST, ranker_params=INVERTED), margin=0.0)
    assert not result.promoted and result.challenger_version == "3"
    assert result.challenger_metrics["ndcg_at_10"] < result.champion_metrics["ndcg_at_10"]
    assert "not better by the margin 0" in result.reason and "(version 3) vs" in result.reason
    assert _champion(settings) == "2" and _champion(settings, PREVIOUS) == "1"
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    assert client.get_model_version(settings.model_name, "3").tags["fitrec.gate.reason"] == result.reason
    assert client.get_run(result.pipeline_run_id).data.tags["fitrec.gate.decision"] == "kept"
    assert result.champion_metrics["leaky"] == 0.0
    assert not any(r.reused_from for r in result.steps)  # new events: every step ran

    # The command prints the decision and the tree; `pipeline show` prints any run's tree again.
    env = {"FITREC_DATA_DIR": str(settings.data_dir)}
    shown = CliRunner().invoke(app, ["pipeline", "show", result.pipeline_run_id], env=env)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[1].strip().startswith("pipeline [finished") and "] kept " in lines[1]
    assert any("─ gate [finished" in line and "] kept " in line for line in lines)
    assert any("─ validate [finished" in line and "] passed " in line for line in lines)
    assert f"gate: {result.reason}" in shown.output
    for step in ("validate", "materialize", "training_set", "train", "evaluate", "gate"):
        assert any(f"─ {step} [finished" in line for line in lines), step
    assert any(line.strip().startswith("│  ├─ generators") for line in lines)
    assert CliRunner().invoke(app, ["pipeline", "show", "no-such-run"], env=env).exit_code == 1


def test_a_failed_data_check_blocks_promotion(world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.cli import app, console

    monkeypatch.setattr(console, "width", 200)
    settings: PipelineSettings = world["settings"]
    champion = _champion(settings)
    versions = len(MlflowClient(tracking_uri=settings.tracking_uri).search_model_versions("name='fitrec-ranker'"))
    # Views by users nobody created: the API takes them (its contract has no memory of users), validation
    # quarantines them, and they are far more than the allowed share of what arrived since the last check.
    at = datetime.now(UTC) - timedelta(hours=1)
    ghosts = [
        {
            "event_id": str(uuid.uuid4()),
            "event_type": "content.viewed",
            "user_id": f"ghost-{i}",
            "item_id": world["items"][i % len(world["items"])],
            "occurred_at": at.isoformat(),
            "properties": {"seconds": 30},
        }
        for i in range(300)
    ]
    _ingest(world["platform"], ghosts)
    result = run_retrain(settings, config=FAST, margin=-1.0)  # any model would pass the margin
    assert not result.data_check_passed and not result.promoted
    assert result.reason.startswith("data check failed") and "user_id.known 300" in result.reason
    assert [r.name for r in result.steps] == ["validate", "gate"]  # nothing trained on a failed check
    assert _champion(settings) == champion
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    assert len(client.search_model_versions("name='fitrec-ranker'")) == versions
    tags = client.get_run(result.pipeline_run_id).data.tags
    assert tags["fitrec.data_check"] == "failed" and tags["fitrec.gate.decision"] == "kept"
    # The same log again, from the command: the failed check is reused, and still blocks.
    env = {"FITREC_DATA_DIR": str(settings.data_dir)}
    again = CliRunner().invoke(app, ["pipeline", "retrain", "--no-two-tower", "--margin", "-1"], env=env)
    assert again.exit_code == 0, again.output
    assert "kept the champion: data check failed" in again.output and "MLflow runs:" in again.output
    lines = again.output.splitlines()
    assert any("validate [finished" in line and f"reused {result.steps[0].run_id}" in line for line in lines)
    assert any(line.strip().startswith("└─ gate [finished") for line in lines)
    assert _champion(settings) == champion


def test_the_mlproject_pipeline_entry_point_runs_it(world: dict[str, Any]) -> None:
    """`mlflow run . -e pipeline`: the project's run is linked by tags to the pipeline run it started."""
    settings: PipelineSettings = world["settings"]
    repo = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "FITREC_DATA_DIR": str(settings.data_dir),
    }
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "run",
            str(repo),
            "-e",
            "pipeline",
            "--env-manager",
            "local",
            "--experiment-name",
            "mlproject-pipeline",
        ],
        env=env,
        cwd=settings.data_dir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiment = client.get_experiment_by_name("mlproject-pipeline")
    assert experiment is not None
    (project,) = client.search_runs([experiment.experiment_id])
    assert project.info.status == "FINISHED" and project.data.tags["mlflow.project.entryPoint"] == "pipeline"
    pipeline = client.get_run(project.data.tags["fitrec.pipeline_run_id"])
    assert pipeline.data.tags["fitrec.project_run_id"] == project.info.run_id
    assert pipeline.info.status == "FINISHED" and pipeline.data.tags["fitrec.gate.decision"] == "kept"
