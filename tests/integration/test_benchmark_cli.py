"""`fitrec benchmark` end to end on small files in both formats; tuning never reads the test part."""

from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from pipelines.cli import app
from training.benchmark import run_benchmark
from training.interactions import Protocol, load_interactions, split_per_user
from training.movielens_like import simulate_interactions, write_movielens

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    interactions, _ = simulate_interactions(n_users=120, n_items=150, n_interactions=4_000, seed=5)
    return interactions


def check_outputs(out: Path, train: pd.DataFrame) -> None:
    table = pd.read_csv(out / "metrics.csv", index_col="model")
    assert {"ease", "rp3beta", "als", "popularity", "spectral", "blend", "two_stage"} <= set(table.index)
    assert {"ndcg@10", "precision@10", "recall@10", "map@10", "coverage"} <= set(table.columns)
    recs = pd.read_csv(out / "recs.csv", dtype={"user_id": str, "item_id": str})
    assert list(recs.columns) == ["user_id", "item_id", "rank", "score"]
    assert recs.groupby("user_id").size().max() == 10
    assert recs.merge(train, on=["user_id", "item_id"]).empty  # no item seen in training
    assert (out / "metrics.md").read_text().count("| ease |") == 1
    client = MlflowClient(tracking_uri=f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("fitrec-benchmark")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 and "ease_ndcg_at_10" in runs[0].data.metrics


def test_benchmark_on_a_movielens_file(small: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    path = tmp_path / "u.data"
    write_movielens(small, str(path))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["benchmark", "--interactions", str(path), "--format", "movielens", "--seed", "42", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    train, _ = split_per_user(load_interactions(path, format="movielens"), Protocol.parse("random:0.75"), seed=42)
    check_outputs(out, train)


def test_benchmark_on_csv_train_and_test_files_with_own_columns_and_no_ratings(
    small: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    train, test = split_per_user(small.drop(columns="rating"), Protocol.parse("time:0.8"))
    for part in (train, test):  # ISO times in the file, as exports often have them
        part["timestamp"] = pd.to_datetime(part["timestamp"], unit="s").dt.strftime("%Y-%m-%dT%H:%M:%S")
    names = {"user_id": "member", "item_id": "workout", "timestamp": "at"}
    train.rename(columns=names).to_csv(tmp_path / "train.csv", index=False)
    test.rename(columns=names).to_csv(tmp_path / "test.csv", index=False)
    out = tmp_path / "out"
    args = [
        "benchmark",
        "--train",
        str(tmp_path / "train.csv"),
        "--test",
        str(tmp_path / "test.csv"),
        "--format",
        "csv",
    ]
    args += ["--user-col", "member", "--item-col", "workout", "--time-col", "at", "--protocol", "time:0.8"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    check_outputs(out, train)


def test_both_or_neither_input_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["benchmark", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "--interactions" in result.output


def test_hyperparameters_do_not_depend_on_the_test_part(small: pd.DataFrame) -> None:
    frame = small.assign(weight=1.0)
    protocol = Protocol.parse("random:0.75")
    train, test = split_per_user(frame, protocol, seed=42)
    other_test = test.sample(frac=0.3, random_state=0)  # a different test part, the same training part
    first = run_benchmark(train, test, protocol=protocol, k=10, seed=42)
    second = run_benchmark(train, other_test, protocol=protocol, k=10, seed=42)
    assert first.params == second.params
    assert first.validation == second.validation and first.best == second.best
    assert not first.table["ndcg@10"].equals(second.table["ndcg@10"])  # the test part did change
