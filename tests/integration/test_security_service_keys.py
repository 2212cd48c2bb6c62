"""A service key on a route that needs a user's sign-in: 403 in the error shape, and documented."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from platform_api.auth.api_keys import create_api_key
from serving.app import create_app
from serving.config import ServingSettings

pytestmark = pytest.mark.security

USER_ROUTES = [("GET", "/v1/workouts"), ("GET", "/v1/users/me"), ("DELETE", "/v1/enrollments/e-1")]


def test_user_routes_refuse_service_keys_as_documented(tmp_path: Path) -> None:
    app = create_app(ServingSettings(FITREC_DATA_DIR=tmp_path, model_refresh_s=0))
    with TestClient(app) as client:
        with app.state.platform.sessions() as session:
            _, secret = create_api_key(session, name="backend", scopes=["recommendations:read"], created_by=None)
            session.commit()
        document = client.get("/openapi.json").json()
        for method, path in USER_ROUTES:
            answer = client.request(method, path, headers={"X-API-Key": secret})
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.json()["error"]["code"] == "forbidden"
            template = path.replace("e-1", "{enrollment_id}")
            assert "403" in document["paths"][template][method.lower()]["responses"], (method, template)
