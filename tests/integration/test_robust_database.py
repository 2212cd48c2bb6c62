"""The platform database down under the running app (a private PostgreSQL): 503s, then recovery."""

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from pipelines.reliability.servers import PrivatePostgres
from serving.app import create_app
from serving.config import ServingSettings

pytestmark = pytest.mark.robustness


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres().start()
    yield server
    server.close()


def _signup(client: TestClient, n: int):  # type: ignore[no-untyped-def]
    body = {"email": f"user{n}@example.com", "password": "correct horse battery", "display_name": f"U{n}"}
    return client.post("/v1/auth/signup", json=body)


def _count(url: str, table: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        count = int(conn.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar_one())
    engine.dispose()
    return count


def test_database_down_is_a_503_with_retry_after_and_nothing_half_written(tmp_path, postgres) -> None:  # type: ignore[no-untyped-def]
    settings = ServingSettings(FITREC_DATA_DIR=tmp_path, DATABASE_URL=postgres.url, model_refresh_s=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        outbox_before = _count(postgres.url, "outbox_message")
        assert _signup(client, 1).status_code in (201, 202)  # 202 since sign-up stopped telling accounts apart
        users, outbox = _count(postgres.url, "user_account"), _count(postgres.url, "outbox_message")

        postgres.stop("immediate")  # a crash: every pooled connection is dead
        for n in (2, 3):
            down = _signup(client, n)
            assert down.status_code == 503 and down.headers["retry-after"].isdigit(), down.text
            error = down.json()["error"]
            assert error["code"] == "database_unavailable" and error["request_id"] == down.headers["x-request-id"]
        ready = client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "down"
        assert ready.json()["checks"]["database"]["status"] == "down"
        assert client.get("/health/live").status_code == 200
        assert client.get("/v1/payments/products").status_code == 200  # needs no database

        postgres.start()
        assert client.get("/health/ready").json()["checks"]["database"]["status"] == "ok"
        assert _signup(client, 4).status_code in (201, 202)
    # The failed sign-ups left nothing behind: exactly one more user, and the outbox rows of one sign-up.
    assert _count(postgres.url, "user_account") == users + 1
    assert _count(postgres.url, "outbox_message") - outbox == outbox - outbox_before


def test_known_service_keys_still_read_recommendations_while_the_database_is_down(tmp_path, postgres) -> None:  # type: ignore[no-untyped-def]
    from platform_api.auth.api_keys import create_api_key
    from serving.auth import KeyCache

    settings = ServingSettings(FITREC_DATA_DIR=tmp_path, DATABASE_URL=postgres.url, model_refresh_s=0)
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        keys = []
        for name in ("backend", "never used"):
            with app.state.platform.sessions() as session:
                _, secret = create_api_key(session, name=name, scopes=["recommendations:read"], created_by=None)
                session.commit()
            keys.append({"X-API-Key": secret})
        app.state.serving.keys = KeyCache(ttl_s=0.0)  # every verdict is already past its freshness
        path = "/v1/users/u-00001/recommendations"
        assert client.get(path, headers=keys[0]).status_code == 200

        postgres.stop("immediate")
        assert client.get(path, headers=keys[0]).status_code == 200  # its last verdict stands in
        unknown = client.get(path, headers=keys[1])
        assert unknown.status_code == 503 and unknown.json()["error"]["code"] == "database_unavailable"
        postgres.start()
