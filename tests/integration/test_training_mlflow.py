"""The packaged recommender through a real MLflow store (SQLite backend, local artifacts)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from training.ranker import train_ranker
from training.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    Promotion,
    list_versions,
    load_champion,
    log_ranker,
    promote,
    rollback,
    set_alias,
)


def synthetic(n_groups: int, *, seed: int, slate: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n_groups * slate
    frame = pd.DataFrame(
        {
            "request_id": np.repeat([f"s{seed}-r{i}" for i in range(n_groups)], slate),
            "fit": rng.random(n),
            "level": rng.choice(["beginner", "intermediate", "expert"], n),
            "position": np.tile(np.arange(slate), n_groups),
        }
    )
    frame["label"] = np.digitize(frame["fit"] + (frame["level"] == "expert") * 0.5, [0.8, 1.1, 1.3])
    return frame


@pytest.fixture(scope="module")
def trained():  # type: ignore[no-untyped-def]
    return train_ranker(
        synthetic(150, seed=1),
        synthetic(40, seed=2),
        features=["fit", "level"],
        categorical=["level"],
        num_boost_round=40,
    )


def test_log_register_alias_and_load_give_the_same_scores(tmp_path: Path, trained) -> None:  # type: ignore[no-untyped-def]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    root = tmp_path / "mlartifacts"
    recommender = trained.recommender()
    rows = synthetic(20, seed=3)
    metrics = {"model_ndcg@10": 0.8, "popularity_ndcg@10": 0.5, "random_ndcg@10": 0.4, "ndcg@10": 0.8}

    first = log_ranker(
        tracking_uri=uri,
        artifact_root=str(root),
        experiment="fitrec-test",
        model_name="ranker-test",
        recommender=recommender,
        params={"learning_rate": 0.05, "eval_at": [10]},
        metrics=metrics,
        lineage={"events": 123, "feature_service": "ranking_v1"},
        input_example=rows[["fit", "level"]].head(3),
    )

    model, version = load_champion(uri, "ranker-test")
    assert version == first.model_version == "1"
    np.testing.assert_allclose(model.predict(rows[["fit", "level"]]), recommender.score(rows))
    # Serving's frames carry ids and missing values; the signature must accept them.
    serving_like = rows.assign(user_id="u1").astype({"fit": "float64"})
    serving_like.loc[0, "fit"] = np.nan
    np.testing.assert_allclose(model.predict(serving_like), recommender.score(serving_like))
    loaded = model.unwrap_python_model()
    np.testing.assert_allclose(loaded.score(rows), recommender.score(rows))
    assert loaded.explain(rows) == recommender.explain(rows)
    assert loaded.feature_names == ("fit", "level")

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(first.run_id)
    assert run.data.metrics["popularity_ndcg_at_10"] == 0.5
    assert run.data.params["learning_rate"] == "0.05"
    assert run.data.tags.get("fitrec.model_name") == "ranker-test"
    artifacts = {a.path for a in client.list_artifacts(first.run_id)}
    assert {"lineage.json", "features.json", "ndcg_and_importance.png"} <= artifacts
    experiment = client.get_experiment(first.experiment_id)
    assert experiment.artifact_location == (root / "fitrec-test").resolve().as_uri()
    # The model's files stay under the data folder's artifact root, the booster as LightGBM text.
    boosters = list(root.rglob("booster.txt"))
    assert boosters and boosters[0].read_text().startswith("tree")

    # The first version of an empty registry serves; later ones wait as challenger.
    assert first.aliases == ("challenger", "champion")
    second = log_ranker(
        tracking_uri=uri,
        artifact_root=str(root),
        experiment="fitrec-test",
        model_name="ranker-test",
        recommender=recommender,
        params={},
        metrics=metrics,
        lineage={},
    )
    assert second.model_version == "2" and second.aliases == ("challenger",)
    assert load_champion(uri, "ranker-test")[1] == "1"  # training never moves the champion
    assert client.get_model_version_by_alias("ranker-test", CHALLENGER).version == 2
    unaliased = log_ranker(
        tracking_uri=uri,
        artifact_root=str(root),
        experiment="fitrec-test",
        model_name="ranker-test",
        recommender=recommender,
        params={},
        metrics={},
        lineage={},
        aliases=False,
    )
    assert unaliased.aliases == () and client.get_model_version_by_alias("ranker-test", CHALLENGER).version == 2

    # A person promotes: champion moves, the old one is kept as previous, the challenger is no longer waiting.
    done = promote(tracking_uri=uri, name="ranker-test", version=2)
    assert (done.champion, done.previous) == ("2", "1")
    assert client.get_model_version_by_alias("ranker-test", CHAMPION).version == 2
    assert client.get_model_version_by_alias("ranker-test", PREVIOUS).version == 1
    listed = {v.version: v for v in list_versions(tracking_uri=uri, name="ranker-test")}
    assert [v for v in listed] == ["3", "2", "1"]
    assert listed["2"].aliases == ("champion",) and listed["1"].aliases == ("previous",) and listed["3"].aliases == ()
    assert listed["1"].metrics["popularity_ndcg_at_10"] == 0.5 and listed["3"].metrics == {}
    with pytest.raises(MlflowException):
        promote(tracking_uri=uri, name="ranker-test", version=9)
    assert rollback(tracking_uri=uri, name="ranker-test") == Promotion(champion="1", previous="2")
    assert load_champion(uri, "ranker-test")[1] == "1"
    with pytest.raises(ValueError, match="no 'previous'"):
        rollback(tracking_uri=uri, name="ranker-test")
    set_alias(tracking_uri=uri, name="ranker-test", version=second.model_version)
    assert client.get_model_version_by_alias("ranker-test", CHAMPION).version == 2


def test_model_commands_promote_and_list(tmp_path: Path, trained, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from pipelines.cli import app, console
    from pipelines.config import PipelineSettings

    monkeypatch.setenv("FITREC_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(console, "width", 160)
    settings = PipelineSettings()
    runner = CliRunner()
    assert "no version" in runner.invoke(app, ["model", "list"]).output
    for _ in range(2):
        log_ranker(
            tracking_uri=settings.tracking_uri,
            artifact_root=settings.artifact_root,
            experiment=settings.model_name,
            model_name=settings.model_name,
            recommender=trained.recommender(),
            params={},
            metrics={"ndcg@10": 0.7},
            lineage={},
        )
    listed = runner.invoke(app, ["model", "list"])
    assert listed.exit_code == 0 and "challenger" in listed.output and "0.700" in listed.output
    promoted = runner.invoke(app, ["model", "promote", "2"])
    assert promoted.exit_code == 0 and "champion: version 2; previous: version 1" in promoted.output
    assert runner.invoke(app, ["model", "promote", "7"]).exit_code == 1
    rolled = runner.invoke(app, ["model", "rollback"])
    assert rolled.exit_code == 0 and "champion: version 1" in rolled.output


def test_run_training_beats_popularity_on_a_simulated_population(tmp_path: Path) -> None:
    """The whole training step on the embedded default: 150 simulated users over 40 days."""
    from datetime import UTC, datetime

    from features.services import RANKING_FEATURES
    from pipelines.build_features import build_features
    from pipelines.config import PipelineSettings
    from pipelines.train import run_training
    from platform_api.catalogue.service import list_items, seed_catalogue
    from platform_api.events.ingest import ingest
    from platform_api.runtime import open_platform
    from training.simulator import simulate

    settings = PipelineSettings(FITREC_DATA_DIR=tmp_path, DATABASE_URL=None, REDIS_URL=None, MLFLOW_TRACKING_URI=None)
    platform = open_platform(settings.platform())
    with platform.sessions() as session:
        seed_catalogue(session)
        items = list_items(session)
    sim = simulate(items, users=150, days=40, seed=3, end=datetime.now(UTC).replace(minute=0, second=0, microsecond=0))
    for batch in sim.iter_batches(5000):
        with platform.sessions() as session:
            assert not ingest(session, raw=batch).rejected
            session.commit()
    platform.close()
    build_features(settings)
    steps: list[str] = []

    report = run_training(settings, oracle=sim.utility, progress=lambda step, done, total: steps.append(step))

    m = report.metrics
    assert m["ndcg@10"] > m["popularity_ndcg@10"] + 0.05, m
    assert m["ndcg@10"] > m["random_ndcg@10"] + 0.1, m
    assert m["ndcg@10"] > 0.8 * m["oracle_ndcg@10"], m
    assert m["eval_groups"] >= 100 and m["eval_groups"] == m["eval_groups_with_positive"]
    assert steps[0] == "read events" and steps[-1] == "done"
    # Lineage: what the run read and how it split it.
    assert report.lineage["event_log_events"] == len(sim) + report.lineage["event_log_counts"]["content.ready"]
    assert report.lineage["feature_service"] == "ranking_v1"
    assert report.lineage["split"]["cutoff"] < report.lineage["split"]["window_end"]

    # Registered under the settings' name with the champion alias, stored under the data folder.
    model, version = load_champion(settings.tracking_uri, settings.model_name)
    assert version == report.model_version
    run = MlflowClient(tracking_uri=settings.tracking_uri).get_run(report.run_id)
    assert run.data.metrics["ndcg_at_10"] == pytest.approx(m["ndcg@10"])
    assert run.data.params["feature_service"] == "ranking_v1"
    assert list(tmp_path.joinpath("mlartifacts").rglob("booster.txt"))
    recommender = model.unwrap_python_model()
    assert recommender.feature_names == tuple(RANKING_FEATURES)
