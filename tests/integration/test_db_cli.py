"""`fitrec db upgrade | current | history` and Alembic's own CLI (alembic.ini) on SQLite and PostgreSQL."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.cli import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"FITREC_DATA_DIR": str(tmp_path)}
    if not db_url.startswith("sqlite"):
        values["DATABASE_URL"] = db_url
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def fitrec(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["db", *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_a_new_database_is_behind_until_upgraded(env: dict[str, str]) -> None:
    code, out = fitrec("current")
    assert code == 1 and "base (empty)" in out and "pending: 0001" in out and "pending: 0005_analytics" in out

    code, out = fitrec("upgrade")
    assert code == 0 and "applied 5 migration(s)" in out and "at 0005_analytics" in out

    code, out = fitrec("current")
    assert code == 0 and "at 0005_analytics" in out and "up to date" in out and "pending" not in out

    code, out = fitrec("upgrade")
    assert code == 0 and "applied 0 migration(s)" in out

    code, out = fitrec("history")
    lines = out.strip().splitlines()
    assert lines[0].startswith("0004_worker -> 0005_analytics (current)") and lines[-1].startswith("<base> -> 0001:")


def test_alembic_own_cli_reads_the_same_configuration(env: dict[str, str]) -> None:
    def alembic(*args: str) -> str:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "alembic"), *args],
            cwd=ROOT,
            env=os.environ | env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert alembic("current").strip() == ""
    alembic("upgrade", "0003_platform")
    assert alembic("current").split()[0] == "0003_platform"
    assert fitrec("current")[0] == 1  # fitrec sees what Alembic did
    alembic("upgrade", "heads")
    assert "(head)" in alembic("current") and fitrec("current")[0] == 0


def test_an_unreachable_database_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FITREC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    code, out = fitrec("current")
    assert code == 2 and "database unreachable" in out and "Connection refused" in out
