"""The data folder is a Feast repository Feast's own CLI works on, agreeing with the programmatic registry."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from feast.repo_config import load_repo_config

from features.pg_offline_store import STORE_TYPE
from features.store import (
    PG_PASSWORD_VAR,
    REDIS_PASSWORD_VAR,
    REPO_MODULE,
    REPO_YAML,
    apply_definitions,
    definitions,
    open_store,
    repo_config,
    write_repo,
)


def test_feast_plan_on_the_data_folder_finds_exactly_the_registered_definitions(tmp_path: Path) -> None:
    # A scratch data folder of the embedded profile; the project's own data is never touched.
    store = open_store(data_dir=tmp_path, project="fitrec_cli_test")
    apply_definitions(store)
    assert {p.name for p in tmp_path.iterdir()} >= {REPO_YAML, REPO_MODULE, ".feastignore"}
    # Sub-folders (model artifacts hold Python files) are not read for definitions.
    (tmp_path / "mlartifacts").mkdir()
    (tmp_path / "mlartifacts" / "boom.py").write_text("raise RuntimeError('imported by feast')\n")

    feast = Path(sys.executable).with_name("feast")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FITREC_")}
    done = subprocess.run(
        [str(feast), "-c", str(tmp_path), "plan"], capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # The CLI parsed the repository's module-level objects and found them equal to what the
    # programmatic path registered: nothing to create, update or delete.
    assert "No changes to registry" in done.stdout, done.stdout
    assert "Deleted" not in done.stdout and "Updated" not in done.stdout
    names = {v.name for v in store.list_feature_views()} | {v.name for v in store.list_on_demand_feature_views()}
    assert names == {o.name for o in definitions("file") if type(o).__name__.endswith("FeatureView")}


def test_the_production_profile_file_keeps_passwords_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "postgresql://fitrec:pg-secret@db.internal:5432/fitrec"
    config = repo_config(
        data_dir=tmp_path, redis_url="redis://:redis-secret@cache:6380/2", registry_url=url, offline_url=url
    )
    write_repo(config, tmp_path)
    text = (tmp_path / REPO_YAML).read_text()
    assert "pg-secret" not in text and "redis-secret" not in text
    assert 'os.environ["FITREC_FEAST_OFFLINE"] = "postgres"' in (tmp_path / REPO_MODULE).read_text()

    monkeypatch.setenv(PG_PASSWORD_VAR, "pg-secret")
    monkeypatch.setenv(REDIS_PASSWORD_VAR, "redis-secret")
    loaded = load_repo_config(tmp_path, tmp_path / REPO_YAML)
    assert loaded.offline_store.type == STORE_TYPE and loaded.offline_store.password == "pg-secret"
    assert loaded.offline_store.host == "db.internal" and loaded.offline_store.db_schema == "fitrec_features"
    assert loaded.registry.registry_type == "sql" and "fitrec:pg-secret@db.internal:5432" in loaded.registry.path
    assert loaded.online_store.type == "redis"
    assert loaded.online_store.connection_string == "cache:6380,db=2,password=redis-secret"

    # The module-level definitions follow the profile's offline store.
    import features.definitions as module

    try:
        monkeypatch.setenv("FITREC_FEAST_OFFLINE", "postgres")
        production = importlib.reload(module)
        assert production.BACKEND == "postgres"
        assert type(production.user_health_source).__name__ == "PostgreSQLSource"
        assert production.user_health.batch_source.name == "user_health_source"
    finally:
        monkeypatch.delenv("FITREC_FEAST_OFFLINE")
        assert importlib.reload(module).BACKEND == "file"
