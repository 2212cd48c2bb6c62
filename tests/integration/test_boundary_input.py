"""Bad input at the boundary of the serving app, on SQLite and PostgreSQL (issue 7, items 12-16).

NUL characters and lone surrogates are refused with a 422 wherever a string enters (path,
query, JSON, form fields, headers); bodies are capped per route class (413); every string field
is bounded; paging parameters are bounded; event timestamps keep to the validation's window.
"""

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
import test_platform_support as support
from fastapi.testclient import TestClient
from test_platform_support import event_count, make_account

from platform_api.boundary import DEFAULT_BODY_BYTES
from platform_api.events.router import EVENT_BATCH_BYTES
from platform_api.runtime import Platform
from serving.app import create_app
from serving.config import ServingSettings

pytestmark = pytest.mark.robustness
platform = support.platform
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 4  # holds NUL bytes, as media do


@pytest.fixture
def client(platform: Platform, tmp_path: Path) -> Iterator[TestClient]:
    """The serving app as deployed (its middleware included), on the test's platform; no model or features."""
    app = create_app(ServingSettings(FITREC_DATA_DIR=tmp_path, model_refresh_s=0))
    app.state.platform = platform
    yield TestClient(app, raise_server_exceptions=False)  # no lifespan: the platform routes need only the platform


def event(**overrides: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "recommendation.clicked",
        "user_id": "u-1",
        "item_id": "plan-x",
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "properties": {"request_id": "r-1", "position": 2},
        **overrides,
    }


def assert_refused(response: Any, status: int = 422) -> None:
    assert response.status_code == status, f"{response.status_code} {response.text[:300]}"
    body = response.json()
    assert set(body) == {"error"} and body["error"]["status"] == status, body
    assert body["error"]["request_id"] == response.headers["x-request-id"]


def raw_json(text: str) -> dict[str, Any]:
    """A JSON body sent verbatim (escapes such as \\u0000 stay escapes on the wire)."""
    return {"content": text.encode(), "headers": {"Content-Type": "application/json"}}


def test_nul_and_lone_surrogates_are_refused_on_every_kind_of_input(platform: Platform, client: TestClient) -> None:
    admin = make_account(platform, role="admin")  # passes every role check: the input is what is refused
    h = admin.headers
    before = event_count(platform)
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/events", {"json": {"events": [event(user_id="u\x00")]}}),
        ("POST", "/v1/events", {"json": {"events": [event(item_id="plan\x00x")]}}),
        ("POST", "/v1/events", raw_json(json.dumps({"events": [event(user_id="u\udc00")]}))),
        (
            "POST",
            "/v1/auth/signup",
            {"json": {"email": "nul@example.com", "password": "long enough pw", "display_name": "A\x00"}},
        ),
        (
            "POST",
            "/v1/auth/signup",
            raw_json('{"email": "s@example.com", "password": "long enough pw", "display_name": "\\ud800"}'),
        ),
        ("POST", "/v1/auth/login", {"json": {"email": "a\x00@example.com", "password": "whatever"}}),
        ("POST", "/v1/auth/verify-email/resend", {"json": {"email": "a\x00@example.com"}}),
        ("PATCH", "/v1/users/me", {"json": {"display_name": "Ada\x00"}}),
        ("POST", "/v1/workouts", {"json": {"request_id": "r\x00"}}),
        ("POST", "/v1/workouts", {"json": {"plan_id": "plan\x00"}}),
        ("GET", "/v1/workouts/%00", {}),
        ("GET", "/v1/plans/plan%00", {}),
        ("GET", "/v1/content/%00x", {}),
        ("GET", "/v1/payments/%00", {}),
        ("GET", "/v1/content", {"params": {"category": "strength\x00"}}),
        (
            "POST",
            "/v1/content",
            {
                "json": {
                    "kind": "video",
                    "title": "T\x00",
                    "category": "strength",
                    "level": "beginner",
                    "duration_min": 5,
                }
            },
        ),
        ("POST", "/v1/credits/charges", {"json": {"amount": 1, "idempotency_key": "k", "ref": "\x00"}}),
        (
            "POST",
            "/v1/auth/login",
            {"content": b"email=a%00b&password=x", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        ),
        # Raw bytes: a NUL, UTF-8-encoded surrogates (json.loads would pass them), invalid UTF-8.
        (
            "POST",
            "/v1/workouts",
            {"content": b'{"request_id": "r\x00"}', "headers": {"Content-Type": "application/json"}},
        ),
        (
            "POST",
            "/v1/workouts",
            {"content": b'{"request_id": "\xed\xa0\x80"}', "headers": {"Content-Type": "application/json"}},
        ),
        (
            "POST",
            "/v1/workouts",
            {"content": b'{"request_id": "\xff\xfe"}', "headers": {"Content-Type": "application/json"}},
        ),
        ("POST", "/v1/workouts", {"content": b'{"request_id": "\xff\xfe"}'}),  # no Content-Type: FastAPI reads JSON
    ]
    for method, path, kwargs in cases:
        kwargs = {**kwargs, "headers": {**h, **kwargs.get("headers", {})}}
        response = client.request(method, path, **kwargs)
        try:
            assert_refused(response)
        except AssertionError as exc:
            raise AssertionError(f"{method} {path} {kwargs.get('json') or kwargs.get('content')}: {exc}") from None
    assert event_count(platform) == before


def test_escapes_that_are_text_pass(platform: Platform, client: TestClient) -> None:
    """An escaped backslash before u0000 is text, and a surrogate pair is one character: both are fine."""
    admin = make_account(platform, role="admin")
    body = '{"display_name": "C:\\\\u0000 \\ud83d\\udcaa"}'
    response = client.patch(
        "/v1/users/me", content=body.encode(), headers={**admin.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["display_name"] == "C:\\u0000 \U0001f4aa"


def call_asgi(app: Any, scope: dict[str, Any], body: bytes) -> list[dict[str, Any]]:
    """One request straight into the ASGI app; the messages it sent back."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    anyio.run(app, scope, receive, send)
    return sent


def test_headers_cannot_smuggle_nul(platform: Platform, client: TestClient) -> None:
    """httpx refuses to send a NUL in a header, so the ASGI request is built by hand."""
    admin = make_account(platform, role="admin")
    raw = [(k.lower().encode(), v.encode()) for k, v in admin.headers.items()]
    for header in ((b"idempotency-key", b"pay-\x00"), (b"x-api-key", b"k\x00"), (b"x-forwarded-for", b"\x00")):
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
            "path": "/v1/payments", "raw_path": b"/v1/payments", "query_string": b"", "root_path": "",
            "headers": [*raw, (b"content-type", b"application/json"), header], "client": ("127.0.0.1", 1),
            "server": ("test", 80),
        }  # fmt: skip
        sent = call_asgi(client.app, scope, b'{"product_code": "credits_10"}')
        assert sent[0]["status"] == 422, sent
        assert json.loads(sent[1]["body"])["error"]["status"] == 422
    assert client.get("/v1/payments", headers=admin.headers).json()["count"] == 0


def test_multipart_checks_form_fields_not_files(platform: Platform, client: TestClient) -> None:
    trainer = make_account(platform, role="trainer")
    created = client.post(
        "/v1/content",
        json={"kind": "video", "title": "Swing", "category": "strength", "level": "beginner", "duration_min": 5},
        headers=trainer.headers,
    )
    item_id = created.json()["id"]
    bad = client.put(
        f"/v1/content/{item_id}/media",
        files={"file": ("clip.mp4", MP4, "video/mp4")},
        data={"note": "a\x00b"},
        headers=trainer.headers,
    )
    assert_refused(bad)
    ok = client.put(
        f"/v1/content/{item_id}/media", files={"file": ("clip.mp4", MP4, "video/mp4")}, headers=trainer.headers
    )
    assert ok.status_code == 200, ok.text


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A JSON body of `total` bytes streamed without a Content-Length."""
    yield b'{"events": [], "pad": "'
    sent = 23
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


def test_bodies_are_capped_per_route_class(platform: Platform, client: TestClient) -> None:
    admin = make_account(platform, role="admin")
    h = {**admin.headers, "Content-Type": "application/json"}
    big = b'{"display_name": "' + b"x" * DEFAULT_BODY_BYTES + b'"}'
    assert_refused(client.patch("/v1/users/me", content=big, headers=h), 413)
    assert_refused(client.post("/v1/auth/login", content=big, headers={"Content-Type": "application/json"}), 413)
    # Counted while streaming when no Content-Length is declared.
    assert_refused(client.post("/v1/workouts", content=chunks(2 * DEFAULT_BODY_BYTES), headers=h), 413)
    # Event batches have a larger cap: a 2 MB batch is read (and validated), a larger one is not.
    batch = [event(properties={"request_id": f"r-{i}", "position": 1}) for i in range(6000)]
    payload = json.dumps({"events": batch}).encode()
    assert DEFAULT_BODY_BYTES < len(payload) < EVENT_BATCH_BYTES
    accepted = client.post("/v1/events", content=payload, headers=h)
    assert accepted.status_code == 202, accepted.text[:300]
    assert_refused(client.post("/v1/events", content=chunks(EVENT_BATCH_BYTES + 1), headers=h), 413)


def test_event_strings_are_bounded(platform: Platform, client: TestClient) -> None:
    """The reported 10 MB request_id: refused by the body cap, and a long one by the field's maxLength."""
    admin = make_account(platform, role="admin")
    before = event_count(platform)
    huge = event(properties={"request_id": "r" * 10_000_000, "position": 1})
    assert_refused(client.post("/v1/events", json={"events": [huge]}, headers=admin.headers), 413)
    long = event(properties={"request_id": "r" * 65, "position": 1})
    assert_refused(client.post("/v1/events", json={"events": [long]}, headers=admin.headers))
    impression = event(
        event_type="recommendation.impression",
        properties={"request_id": "r", "position": 1, "model_version": "v" * 65},
    )
    assert_refused(client.post("/v1/events", json={"events": [impression]}, headers=admin.headers))
    assert event_count(platform) == before


@pytest.mark.parametrize(
    "query", [{"offset": str(2**63)}, {"offset": str(2**64 + 5)}, {"offset": "10001"}, {"limit": str(2**63)}]
)
def test_paging_parameters_are_bounded(platform: Platform, client: TestClient, query: dict[str, str]) -> None:
    user = make_account(platform)
    assert_refused(client.get("/v1/payments", params=query, headers=user.headers))
    assert client.get("/v1/payments", params={"offset": "10000"}, headers=user.headers).status_code == 200


def test_event_timestamps_keep_to_the_validation_window(platform: Platform, client: TestClient) -> None:
    admin = make_account(platform, role="admin")
    before = event_count(platform)
    for occurred_at in ("0001-01-01T00:00:00Z", "1900-01-01T00:00:00Z", "1970-01-01T00:00:00Z"):
        response = client.post("/v1/events", json={"events": [event(occurred_at=occurred_at)]}, headers=admin.headers)
        assert_refused(response)
        assert "years ago" in response.text
    health = event(event_type="health_metric.synced", item_id=None, properties={"day": "1900-01-01", "steps": 100})
    assert_refused(client.post("/v1/events", json={"events": [health]}, headers=admin.headers))
    assert event_count(platform) == before
    recent = event(occurred_at=(datetime.now(UTC) - timedelta(days=5 * 365)).isoformat())
    assert client.post("/v1/events", json={"events": [recent]}, headers=admin.headers).status_code == 202


def test_health_sync_days_keep_to_the_window(platform: Platform, client: TestClient) -> None:
    """The sync route emits health_metric.synced events: it must refuse what the event contract refuses (not 500)."""
    user = make_account(platform)
    linked = client.post(
        "/v1/health/integrations", json={"provider": "fitbit", "access_token": "t"}, headers=user.headers
    )
    sync = f"/v1/health/integrations/{linked.json()['id']}/sync"
    old = {"measurements": [{"day": "1900-01-01", "metric": "steps", "value": 10}]}
    assert_refused(client.post(sync, json=old, headers=user.headers))
    today = {"measurements": [{"day": datetime.now(UTC).date().isoformat(), "metric": "steps", "value": 10}]}
    assert client.post(sync, json=today, headers=user.headers).status_code == 200
