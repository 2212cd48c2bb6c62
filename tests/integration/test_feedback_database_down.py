"""Feedback while the platform database is down (a private PostgreSQL): a 503 with Retry-After, then recorded."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from pipelines.reliability.servers import PrivatePostgres
from platform_api.auth.api_keys import create_api_key
from platform_api.catalogue.service import seed_catalogue
from platform_api.runtime import open_platform
from serving.app import create_app
from serving.config import ServingSettings

pytestmark = pytest.mark.robustness


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres().start()
    yield server
    server.close()


def test_feedback_is_a_503_while_the_database_is_down(tmp_path, postgres) -> None:  # type: ignore[no-untyped-def]
    settings = ServingSettings(
        FITREC_DATA_DIR=tmp_path,
        DATABASE_URL=postgres.url,
        model_refresh_s=0,
    )
    platform = open_platform(settings.platform())
    with platform.sessions() as session:
        seed_catalogue(session)
        session.commit()
        _, secret = create_api_key(
            session, name="backend", scopes=["recommendations:read", "feedback:write"], created_by=None
        )
    platform.close()
    key = {"X-API-Key": secret}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        answer = client.get("/v1/users/u-1/recommendations", headers=key).json()  # popularity: no model here
        body = {"request_id": answer["request_id"], "item_id": answer["data"][0]["item_id"], "user_id": "u-1"}

        postgres.stop("immediate")
        down = client.post("/v1/recommendations/feedback", json=body | {"action": "click"}, headers=key)
        assert down.status_code == 503 and down.headers["retry-after"].isdigit(), down.text
        assert down.json()["error"]["code"] == "database_unavailable"

        postgres.start()
        again = client.post("/v1/recommendations/feedback", json=body | {"action": "click"}, headers=key)
        assert again.status_code == 201 and again.json()["duplicate"] is False, again.text
