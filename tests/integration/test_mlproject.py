"""The MLproject runs with MLflow's own CLI on a fresh clone of the repository (as a data scientist runs it)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from training.movielens_like import simulate_interactions, write_movielens

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs a git checkout")
def test_mlflow_run_benchmark_entry_point_from_a_fresh_clone(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)
    interactions, _ = simulate_interactions(n_users=80, n_items=100, n_interactions=2_500, seed=5)
    write_movielens(interactions, str(tmp_path / "u.data"))
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": tracking,
    }
    out = tmp_path / "out"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "run",
            str(clone),
            "-e",
            "benchmark",
            "--env-manager",
            "local",
            "--experiment-name",
            "mlproject-test",
            "-P",
            f"interactions={tmp_path / 'u.data'}",
            "-P",
            f"out={out}",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = pd.read_csv(out / "metrics.csv", index_col="model")
    assert {"ease", "popularity"} <= set(table.index)
    client = MlflowClient(tracking_uri=tracking)
    experiment = client.get_experiment_by_name("mlproject-test")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id])
    # The project run itself carries the benchmark's figures, and the clone's commit.
    assert run.info.status == "FINISHED"
    assert "ease_ndcg_at_10" in run.data.metrics
    assert run.data.tags.get("mlflow.project.entryPoint") == "benchmark"
