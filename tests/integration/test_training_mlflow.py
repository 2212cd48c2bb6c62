"""The packaged recommender through a real MLflow store (SQLite backend, local artifacts)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from training.ranker import train_ranker
from training.registry import CHAMPION, load_champion, log_ranker, set_alias


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

    # A second version takes the alias only when asked.
    second = log_ranker(
        tracking_uri=uri,
        artifact_root=str(root),
        experiment="fitrec-test",
        model_name="ranker-test",
        recommender=recommender,
        params={},
        metrics=metrics,
        lineage={},
        alias=None,
    )
    assert second.model_version == "2"
    assert load_champion(uri, "ranker-test")[1] == "1"
    set_alias(tracking_uri=uri, name="ranker-test", version=second.model_version)
    assert client.get_model_version_by_alias("ranker-test", CHAMPION).version == 2
