"""The packaged recommender through a real MLflow store (SQLite backend, local artifacts): the pyfunc
round trip, the model lifecycle (challenger, promote, rollback), and training as steps handing over run ids."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from models.generators import ContentGenerator, EASEGenerator, PopularityGenerator
from models.recommender import PackagedRecommender, RecommenderConfig, SlatePolicy, users_frame
from training.ranker import train_ranker
from training.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    Promotion,
    list_versions,
    load_champion,
    log_recommender,
    promote,
    rollback,
    set_alias,
)

ATTRIBUTES = {"goal": "user_profile:goal", "level": "user_profile:fitness_level"}


def _package() -> tuple[PackagedRecommender, pd.DataFrame, pd.DataFrame]:
    """A small fitted package, its users frame, and candidate rows with a `fit` feature and labels."""
    rng = np.random.default_rng(0)
    items = pd.DataFrame(
        {"category": rng.choice(["cardio", "strength"], 40), "level": rng.choice(["beginner", "expert"], 40)},
        index=[f"it-{i}" for i in range(40)],
    )
    interactions = pd.DataFrame(
        {"user_id": rng.choice([f"u-{i}" for i in range(25)], 300), "item_id": rng.choice(items.index, 300)}
    ).assign(weight=1.0, timestamp=rng.random(300) * 1e6)
    stored = pd.DataFrame(
        {"goal": rng.choice(["endurance", "mobility"], 30), "fitness_level": rng.choice(["beginner", "expert"], 30)},
        index=[f"u-{i}" for i in range(30)],
    )
    described = users_frame(stored, ATTRIBUTES, {})
    generators = {
        "popularity": PopularityGenerator(segment_columns=["goal", "level"], name="popularity"),
        "ease": EASEGenerator(l2=10.0, name="ease"),
        "content": ContentGenerator(columns=["category", "level"], name="content"),
    }
    for generator in generators.values():
        generator.fit(interactions, items, users_frame=described)
    config = RecommenderConfig(
        feature_service="ranking_v1",
        online_features=("fit",),
        sources=tuple(generators),
        per_source={"popularity": 6, "ease": 6, "content": 6},
        slate=SlatePolicy(k=5, max_per_category=3),
        user_attributes=ATTRIBUTES,
    )
    package = PackagedRecommender(generators=generators, config=config, items=items["category"])
    rows = package.candidates([f"u-{i}" for i in range(30)], described)
    rows["fit"] = rng.random(len(rows))
    rows["label"] = np.digitize(rows["fit"] + (rows["ease_rank"] < 4) * 0.5, [0.7, 1.0, 1.3])
    rows["request_id"] = rows["user_id"]
    train, valid = rows[rows["user_id"] < "u-2"], rows[rows["user_id"] >= "u-2"]
    ranker = train_ranker(train, valid, features=config.features, categorical=[], num_boost_round=30, min_rounds=5)
    package = PackagedRecommender(generators=generators, ranker=ranker.ranker(), config=config, items=items["category"])
    return package, described, rows


def _log(uri: str, root: Path, package: PackagedRecommender, rows: pd.DataFrame | None, **kw):  # type: ignore[no-untyped-def]
    return log_recommender(
        tracking_uri=uri,
        artifact_root=str(root),
        experiment="fitrec-test",
        model_name="ranker-test",
        package=package,
        params={"learning_rate": 0.05},
        metrics={"ndcg@10": 0.8, "popularity_ndcg@10": 0.5},
        lineage={"events": 123},
        input_example=rows,
        **kw,
    )


def test_pyfunc_round_trip_and_the_model_lifecycle(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    root = tmp_path / "mlartifacts"
    package, described, rows = _package()
    first = _log(uri, root, package, rows)

    model, version = load_champion(uri, "ranker-test")
    assert version == first.model_version == "1"
    # predict: candidate rows with ids and online features; missing values accepted by the signature.
    bare = rows[["user_id", "item_id", "fit"]].astype({"fit": "float64"})
    bare.loc[0, "fit"] = np.nan
    np.testing.assert_allclose(model.predict(bare), package.predict(None, bare))
    # The same top-k for every user as the in-memory model: candidates, scores, slate policy.
    loaded = model.unwrap_python_model()
    for user in ("u-3", "u-17", "u-28"):  # u-28 is cold, described by its attributes
        mine = package.candidates([user], described).assign(fit=0.5)
        theirs = loaded.candidates([user], described).assign(fit=0.5)
        pd.testing.assert_frame_equal(theirs, mine)
        top = mine["item_id"].to_numpy()[package.slate(mine["item_id"].tolist(), package.score(mine))]
        again = theirs["item_id"].to_numpy()[loaded.slate(theirs["item_id"].tolist(), loaded.score(theirs))]
        assert top.tolist() == again.tolist() and len(top) == 5
    assert loaded.explain(rows.head(4)) == package.explain(rows.head(4))
    assert loaded.feature_service == "ranking_v1"

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(first.run_id)
    assert run.data.metrics["popularity_ndcg_at_10"] == 0.5 and run.data.params["learning_rate"] == "0.05"
    assert {"lineage.json", "recommender_config.json"} <= {a.path for a in client.list_artifacts(first.run_id)}
    assert client.get_experiment(first.experiment_id).artifact_location == (root / "fitrec-test").resolve().as_uri()
    # The model's files stay under the artifact root: the booster as LightGBM text, generators as npz + JSON.
    boosters = list(root.rglob("booster.txt"))
    assert boosters and boosters[0].read_text().startswith("tree") and list(root.rglob("generator.json"))
    assert not [p for p in root.rglob("*.pkl") if "package" in str(p)]

    # The first version of an empty registry serves; later ones wait as challenger.
    assert first.aliases == ("challenger", "champion")
    second = _log(uri, root, package, None)
    assert second.model_version == "2" and second.aliases == ("challenger",)
    assert load_champion(uri, "ranker-test")[1] == "1"  # training never moves the champion
    assert client.get_model_version_by_alias("ranker-test", CHALLENGER).version == 2
    unaliased = _log(uri, root, package, None, aliases=False)
    assert unaliased.aliases == () and client.get_model_version_by_alias("ranker-test", CHALLENGER).version == 2

    # A person promotes: champion moves, the old one is kept as previous, the challenger is no longer waiting.
    assert promote(tracking_uri=uri, name="ranker-test", version=2) == Promotion(champion="2", previous="1")
    assert client.get_model_version_by_alias("ranker-test", CHAMPION).version == 2
    assert client.get_model_version_by_alias("ranker-test", PREVIOUS).version == 1
    listed = {v.version: v for v in list_versions(tracking_uri=uri, name="ranker-test")}
    assert list(listed) == ["3", "2", "1"]
    assert listed["2"].aliases == ("champion",) and listed["1"].aliases == ("previous",) and listed["3"].aliases == ()
    assert listed["1"].metrics["ndcg_at_10"] == 0.8
    with pytest.raises(MlflowException):
        promote(tracking_uri=uri, name="ranker-test", version=9)
    assert rollback(tracking_uri=uri, name="ranker-test") == Promotion(champion="1", previous="2")
    assert load_champion(uri, "ranker-test")[1] == "1"
    with pytest.raises(ValueError, match="no 'previous'"):
        rollback(tracking_uri=uri, name="ranker-test")
    set_alias(tracking_uri=uri, name="ranker-test", version=second.model_version)
    assert client.get_model_version_by_alias("ranker-test", CHAMPION).version == 2


def test_model_commands_promote_and_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app, console
    from pipelines.config import PipelineSettings

    monkeypatch.setenv("FITREC_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(console, "width", 160)
    settings = PipelineSettings()
    runner = CliRunner()
    assert "no version" in runner.invoke(app, ["model", "list"]).output
    package, _, rows = _package()
    for _ in range(2):
        log_recommender(
            tracking_uri=settings.tracking_uri,
            artifact_root=settings.artifact_root,
            experiment=settings.model_name,
            model_name=settings.model_name,
            package=package,
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


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """150 simulated users over 40 days on the embedded default, features built."""
    from datetime import UTC, datetime

    from pipelines.build_features import build_features
    from pipelines.config import PipelineSettings
    from platform_api.catalogue.service import list_items, seed_catalogue
    from platform_api.events.ingest import ingest
    from platform_api.runtime import open_platform
    from training.simulator import simulate

    data_dir = tmp_path_factory.mktemp("simulated")
    settings = PipelineSettings(FITREC_DATA_DIR=data_dir, DATABASE_URL=None, REDIS_URL=None, MLFLOW_TRACKING_URI=None)
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
    return settings, sim


def test_training_steps_hand_over_run_ids_and_leave_the_champion(simulated) -> None:  # type: ignore[no-untyped-def]
    """All steps under one parent run on the embedded default, then steps alone from their input run ids."""
    from features.services import RANKING_FEATURES
    from pipelines.build_features import feature_store
    from pipelines.train import run_training, tracking_of
    from training.steps import STEPS, TrainingConfig, build_package, register, top_lists

    settings, sim = simulated
    steps: list[str] = []
    config = TrainingConfig(two_tower=False)  # the two-tower has tests of its own; here it costs time only
    report = run_training(
        settings, oracle=sim.utility, progress=lambda step, done, total: steps.append(step), config=config
    )
    m = report.metrics
    assert m["ndcg@10"] > m["popularity_ndcg@10"] + 0.05, m
    assert m["ndcg@10"] > m["random_ndcg@10"] + 0.1, m
    assert m["ndcg@10"] > 0.8 * m["oracle_ndcg@10"], m
    assert m["eval_groups"] >= 100 and m["eval_groups"] == m["eval_groups_with_positive"]
    for key in ("map@10", "mrr", "topk_recall@10", "topk_ndcg@10", "topk_map@10", "topk_mrr", "topk_coverage"):
        assert 0 <= m[key] <= 1 and f"popularity_{key}" in m and f"oracle_{key}" in m, key
    assert m["topk_novelty"] > m["popularity_topk_novelty"] and m["topk_coverage"] > m["popularity_topk_coverage"]
    assert "cold_users_ndcg@10" in m and "new_items_topk_recall@10" in m and m["topk_users"] > 50
    assert steps == [*STEPS, "done"]
    assert report.lineage["event_log_events"] == len(sim) + report.lineage["event_log_counts"]["content.ready"]
    assert report.lineage["split"]["cutoff"] < report.lineage["split"]["window_end"]

    # One parent run, a nested run per step, each naming the run it read.
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    runs = {step: client.get_run(run_id) for step, run_id in report.run_ids.items()}
    assert set(runs) == set(STEPS)
    assert {r.data.tags["mlflow.parentRunId"] for r in runs.values()} == {report.parent_run_id}
    chain = [runs[s].data.tags.get("fitrec.input_run_id") for s in STEPS]
    assert chain == [None, *(runs[s].info.run_id for s in STEPS[:-1])]
    parent = client.get_run(report.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["ndcg_at_10"] == pytest.approx(m["ndcg@10"])
    # The dataset: an MLflow dataset input with its digest, window and rows, and the parquet files.
    dataset = runs["dataset"]
    assert dataset.inputs is not None
    (logged,) = [d for d in dataset.inputs.dataset_inputs if d.dataset.name.endswith("labelled-impressions")]
    input_tags = {t.key: t.value for t in logged.tags}
    assert logged.dataset.digest and input_tags["cutoff"] == report.lineage["split"]["cutoff"]
    assert (
        int(input_tags["rows"])
        == dataset.data.metrics["train_rows"] + dataset.data.metrics["valid_rows"] + (dataset.data.metrics["test_rows"])
    )
    files = {a.path for a in client.list_artifacts(dataset.info.run_id, "dataset")}
    assert {"dataset/labelled.parquet", "dataset/interactions.parquet", "dataset/window.json"} <= files
    plots = {a.path for a in client.list_artifacts(runs["evaluate"].info.run_id, "plots")}
    assert plots == {"plots/ndcg_at_k.png", "plots/feature_importance.png", "plots/calibration.png"}
    # A step run's duration is the step's time: the ranker run holds the fits it reports.
    ranker = runs["ranker"]
    fits = ranker.data.metrics["lightgbm_seconds"] + ranker.data.metrics.get("torch_seconds", 0.0)
    assert (ranker.info.end_time - ranker.info.start_time) / 1000 >= fits
    assert runs["ranker"].data.params["ranker_choice"] in (
        "lightgbm",
        "torch",
        "blend_0.25",
        "blend_0.50",
        "blend_0.75",
    )

    # Registered as the first version of an empty registry: challenger and champion.
    assert report.aliases == ("challenger", "champion") and report.model_version == "1"
    model, version = load_champion(settings.tracking_uri, settings.model_name)
    assert version == "1" and model.unwrap_python_model().online_features == tuple(RANKING_FEATURES)
    assert runs["register"].data.metrics["ndcg_at_10"] == pytest.approx(m["ndcg@10"])

    # A step alone, from the run id of the step before: a second registration, in the same parent run.
    track = tracking_of(settings)
    again, second, aliases = register(track, report.run_ids["evaluate"])
    assert (second, aliases) == ("2", ("challenger",))
    assert client.get_run(again).data.tags["mlflow.parentRunId"] == report.parent_run_id
    assert client.get_model_version_by_alias(settings.model_name, CHAMPION).version == 1  # champion untouched
    assert client.get_model_version_by_alias(settings.model_name, CHALLENGER).version == 2

    # Through the registry, the same top-10 as the in-memory model, candidates to slate.
    package, data = build_package(track, report.run_ids["ranker"], stage="final")
    users = sorted(data.interactions["user_id"].unique())[:4]
    store, at = feature_store(settings), pd.Timestamp.now(tz="UTC")
    mine = top_lists(package, users, store=store, at=at, users_frame_=data.users(), k=10)
    theirs = top_lists(model.unwrap_python_model(), users, store=store, at=at, users_frame_=data.users(), k=10)
    pd.testing.assert_frame_equal(theirs, mine)
    assert len(mine) == 40
