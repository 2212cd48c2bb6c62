"""Start-up serves what it can: Redis unreachable, the champion's artifact gone, the online store missing;
and what it built stays out of the garbage collector's way."""

import gc
import shutil
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient
from support import free_port

from features.store import apply_definitions, open_store
from platform_api.auth.api_keys import create_api_key
from platform_api.catalogue.service import seed_catalogue
from platform_api.config import PlatformSettings
from platform_api.runtime import open_platform
from serving.app import create_app
from serving.config import ServingSettings
from training.registry import ensure_experiment, tracking

pytestmark = pytest.mark.robustness
MODEL = "fitrec-ranker"


class TinyRanker(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
    def predict(self, context, model_input):  # type: ignore[no-untyped-def]
        return self.score(model_input)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(frame))

    def explain(self, frame: pd.DataFrame, *, relative: bool = False) -> list[str]:
        return [""] * len(frame)


def _key(data_dir: Path) -> dict[str, str]:
    platform = open_platform(PlatformSettings(FITREC_DATA_DIR=data_dir))
    with platform.sessions() as session:
        seed_catalogue(session)
        _, secret = create_api_key(session, name="t", scopes=["recommendations:read"], created_by=None)
        session.commit()
    platform.close()
    return {"X-API-Key": secret}


def _register(settings: ServingSettings, versions: int) -> list[str]:
    """`versions` registered versions of a tiny model; returns their artifact folders."""
    folders = []
    with tracking(settings.tracking_uri) as client:
        experiment = ensure_experiment(client, name="t", artifact_root=str(settings.data_dir / "mlruns"))
        for _ in range(versions):
            with mlflow.start_run(experiment_id=experiment):
                info = mlflow.pyfunc.log_model(name="model", python_model=TinyRanker())
            version = mlflow.register_model(info.model_uri, MODEL)
            folders.append(urlparse(client.get_model_version_download_uri(MODEL, version.version)).path)
    return folders


def _settings(data_dir: Path, **kw: object) -> ServingSettings:
    return ServingSettings(FITREC_DATA_DIR=data_dir, model_refresh_s=0, **kw)


def test_an_unreachable_redis_at_start_up(tmp_path: Path) -> None:
    key = _key(tmp_path)
    apply_definitions(open_store(data_dir=tmp_path))  # built features, whose online store will be Redis
    settings = _settings(tmp_path, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/payments/products").status_code == 200  # the platform API is up
        answer = client.get("/v1/users/u-1/recommendations", headers=key)
        assert answer.status_code == 200 and answer.json()["model_version"] == "fallback:popularity"
        ready = client.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded"
        checks = ready.json()["checks"]
        assert checks["cache"]["status"] == "down" and checks["features"]["status"] == "down"
        assert checks["database"]["status"] == "ok"
        assert client.get("/health/live").json() == {"status": "ok"}


def test_a_deleted_champion_artifact_serves_the_previous_version(tmp_path: Path) -> None:
    key = _key(tmp_path)
    settings = _settings(tmp_path)
    _, newest = _register(settings, versions=2)
    client_ = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    client_.set_registered_model_alias(MODEL, "champion", "2")
    client_.set_registered_model_alias(MODEL, "previous", "1")
    shutil.rmtree(newest)
    with TestClient(create_app(settings)) as client:
        health = client.get("/health").json()
        assert health["model_version"] == "v1" and health["status"] == "degraded"
        assert health["checks"]["model"]["status"] == "degraded"
        assert "v2 failed to load" in health["checks"]["model"]["detail"]
        answer = client.get("/v1/users/u-1/recommendations", headers=key).json()
        # v1 serves; with no features built yet its answer falls back to popularity, saying why.
        assert answer["fallback_reason"] == "features_unavailable"


def test_a_missing_online_store(tmp_path: Path) -> None:
    key = _key(tmp_path)
    settings = _settings(tmp_path)
    _register(settings, versions=1)
    MlflowClient(tracking_uri=settings.tracking_uri).set_registered_model_alias(MODEL, "champion", "1")
    apply_definitions(open_store(data_dir=tmp_path))
    (tmp_path / "feature_repo" / "online_store.db").unlink()
    with TestClient(create_app(settings)) as client:
        answer = client.get("/v1/users/u-1/recommendations", headers=key)
        assert answer.status_code == 200 and answer.json()["model_version"] == "fallback:popularity"
        assert answer.json()["fallback_reason"] == "ranking_failed"
        ready = client.get("/health/ready").json()
        assert ready["model_version"] == "v1" and ready["checks"]["features"]["status"] == "down"


def test_start_up_objects_are_frozen_out_of_every_collection(tmp_path: Path) -> None:
    """A full collection walked every object start-up left (~330 ms, all requests stalled): they are frozen
    once the app is up, and unfrozen when it stops."""
    key = _key(tmp_path)
    settings = _settings(tmp_path)
    _register(settings, versions=1)
    MlflowClient(tracking_uri=settings.tracking_uri).set_registered_model_alias(MODEL, "champion", "1")
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/users/u-1/recommendations", headers=key).status_code == 200
        frozen, walked = gc.get_freeze_count(), len(gc.get_objects())
        assert frozen > 100_000 and walked < frozen / 5, (frozen, walked)
    assert gc.get_freeze_count() == 0
