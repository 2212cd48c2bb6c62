"""POST /v1/events over the serving app, on SQLite and PostgreSQL: auth, all-or-nothing, dedupe."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from platform_api.auth.api_keys import create_api_key
from platform_api.events.tables import EventLog
from serving.app import create_app
from serving.config import ServingSettings


def _event(user_id: str = "u-1") -> dict:  # type: ignore[type-arg]
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "recommendation.clicked",
        "user_id": user_id,
        "item_id": "plan-x",
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "properties": {"request_id": "r-1", "position": 2},
    }


@pytest.fixture
def client(db_url, tmp_path):  # type: ignore[no-untyped-def]
    app = create_app(ServingSettings(FITREC_DATA_DIR=tmp_path, DATABASE_URL=db_url, model_refresh_s=0))
    with TestClient(app) as c:
        yield c


def _key(client: TestClient, scopes: list[str]) -> dict[str, str]:
    with client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
        _, secret = create_api_key(session, name="test", scopes=scopes, created_by=None)
        session.commit()
    return {"X-API-Key": secret}


def _count(client: TestClient) -> int:
    with client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
        return int(session.scalar(select(func.count()).select_from(EventLog)) or 0)


@pytest.mark.security
def test_events_need_a_key_with_the_write_scope(client: TestClient) -> None:
    body = {"events": [_event()]}
    assert client.post("/v1/events", json=body).status_code == 401
    denied = client.post("/v1/events", json=body, headers=_key(client, ["recommendations:read"]))
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "insufficient_scope"
    assert _count(client) == 0


def test_batch_is_stored_once_per_event_id(client: TestClient) -> None:
    headers = _key(client, ["events:write"])
    events = [_event(), _event()]
    first = client.post("/v1/events", json={"events": events}, headers=headers)
    assert first.status_code == 202 and first.json() == {"received": 2, "stored": 2, "duplicates": 0}
    again = client.post("/v1/events", json={"events": events}, headers=headers)
    assert again.json() == {"received": 2, "stored": 0, "duplicates": 2}
    assert _count(client) == 2


def test_a_malformed_event_rejects_the_batch_with_reasons(client: TestClient) -> None:
    headers = _key(client, ["events:write"])
    bad = _event()
    bad["properties"]["position"] = -1
    response = client.post("/v1/events", json={"events": [_event(), bad]}, headers=headers)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error" and "nothing was stored" in error["message"]
    assert error["details"][0]["index"] == 1 and "position" in error["details"][0]["errors"][0]["loc"]
    assert _count(client) == 0
