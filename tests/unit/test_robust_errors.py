"""Every 5xx is the one JSON error shape with a request id that is also in the log."""

import logging

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from platform_api.errors import install_error_handlers

pytestmark = pytest.mark.robustness


def _app(tmp_path) -> FastAPI:  # type: ignore[no-untyped-def]
    app = FastAPI()
    install_error_handlers(app)
    unreachable = sa.create_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    @app.get("/async-boom")
    async def async_boom() -> None:
        raise KeyError("a bug")

    @app.post("/write")
    def write() -> None:
        with unreachable.connect() as conn:  # the database cannot be opened: an outage, not a bug
            conn.execute(sa.text("SELECT 1"))

    @app.post("/duplicate")
    def duplicate() -> None:
        with sa.create_engine("sqlite://").connect() as conn:
            conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            conn.execute(sa.text("INSERT INTO t VALUES (1), (1)"))

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"status": "ok"}

    return app


@pytest.mark.parametrize("path", ["/boom", "/async-boom"])
def test_an_unhandled_error_is_a_json_500_with_a_logged_request_id(tmp_path, caplog, path) -> None:  # type: ignore[no-untyped-def]
    with TestClient(_app(tmp_path), raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR):
        answer = client.get(path)
    assert answer.status_code == 500 and answer.headers["content-type"] == "application/json"
    error = answer.json()["error"]
    assert error["code"] == "internal_error" and error["status"] == 500
    assert error["request_id"] == answer.headers["x-request-id"]
    logged = [r for r in caplog.records if error["request_id"] in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # with its traceback


def test_a_valid_incoming_request_id_is_kept_and_an_invalid_one_replaced(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with TestClient(_app(tmp_path), raise_server_exceptions=False) as client:
        kept = client.get("/ok", headers={"X-Request-ID": "trace-0123456789"})
        assert kept.headers["x-request-id"] == "trace-0123456789"
        replaced = client.get("/boom", headers={"X-Request-ID": "<script>"})
        assert replaced.headers["x-request-id"] != "<script>"
        assert replaced.json()["error"]["request_id"] == replaced.headers["x-request-id"]
        assert client.get("/nowhere").json()["error"]["request_id"]  # 4xx carry it too


def test_database_unavailable_is_a_503_with_retry_after_and_a_bug_stays_a_500(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with TestClient(_app(tmp_path), raise_server_exceptions=False) as client:
        down = client.post("/write")
        assert down.status_code == 503 and down.headers["retry-after"].isdigit()
        assert down.json()["error"]["code"] == "database_unavailable"
        assert down.json()["error"]["request_id"] == down.headers["x-request-id"]
        bug = client.post("/duplicate")  # an IntegrityError is a bug to fix, not an outage to wait out
        assert bug.status_code == 500 and "retry-after" not in bug.headers
        assert bug.json()["error"]["code"] == "internal_error"
