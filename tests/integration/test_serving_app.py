"""The serving app before anything is trained: up, honest about it, and clear errors."""

from fastapi.testclient import TestClient

from platform_api.auth.api_keys import create_api_key
from platform_api.catalogue.service import seed_catalogue
from platform_api.config import PlatformSettings
from platform_api.runtime import open_platform
from serving.app import create_app
from serving.config import ServingSettings


def test_fresh_app_reports_degraded_and_answers_popularity(tmp_path) -> None:  # type: ignore[no-untyped-def]
    platform = open_platform(PlatformSettings(FITREC_DATA_DIR=tmp_path))
    with platform.sessions() as session:
        seed_catalogue(session)  # items exist, features and model do not
        _, secret = create_api_key(session, name="t", scopes=["recommendations:read"], created_by=None)
        session.commit()
    platform.close()
    with TestClient(create_app(ServingSettings(FITREC_DATA_DIR=tmp_path, model_refresh_s=0))) as client:
        health = client.get("/health").json()
        assert health["status"] == "degraded" and health["model_version"] is None and health["database"] == "sqlite"
        assert health["checks"]["database"]["status"] == "ok" and health["checks"]["model"]["status"] == "down"
        assert health["checks"]["features"]["status"] == "down" and "fitrec features build" in str(health["checks"])
        assert client.get("/health/features").json() == {"views": {}}
        answer = client.get("/v1/users/u-1/recommendations", headers={"X-API-Key": secret})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model_version"] == "fallback:popularity" and body["fallback_reason"] == "model_unavailable"
        assert body["count"] == 10 and len({d["item_id"] for d in body["data"]}) == 10
        bad_k = client.get("/v1/users/u-1/recommendations?k=500", headers={"X-API-Key": secret})
        assert bad_k.status_code == 422 and bad_k.json()["error"]["message"].startswith("query.k")
        docs = client.get("/openapi.json").json()
        params = docs["paths"]["/v1/users/{user_id}/recommendations"]["get"]["parameters"]
        assert {p["name"] for p in params} == {"user_id", "k", "surface", "explain"}
