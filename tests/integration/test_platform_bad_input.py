"""Bad input never becomes a 500, nor a status the OpenAPI document does not list: every route of
plans, workouts, health, content, payments and entitlements gets malformed bodies, junk path ids
and junk queries, through the deployed app (its input guard included), on SQLite and PostgreSQL."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_platform_support as support
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from test_platform_support import make_account

from platform_api.routers import ROUTERS
from platform_api.runtime import Platform
from serving.app import create_app
from serving.config import ServingSettings

pytestmark = pytest.mark.robustness
platform = support.platform


@pytest.fixture
def client(platform: Platform, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(ServingSettings(FITREC_DATA_DIR=tmp_path, model_refresh_s=0))
    app.state.platform = platform  # no lifespan: these routes need only the platform
    yield TestClient(app, raise_server_exceptions=False)


TAGS = {"plans", "workouts", "health", "content", "payments", "entitlements"}
BODIES: list[dict[str, object]] = [
    {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
    {"content": b"\xff\xfe\x00garbage", "headers": {"Content-Type": "application/json"}},
    {"json": []},
    {"json": {"unexpected": True}},
    {
        "json": {
            "measurements": [{"day": "yesterday", "metric": "steps", "value": -1}],
            "sets": [{"reps": "many"}],
            "exercise_id": None,
            "product_code": 7,
            "amount": 1e300,
            "started_at": "2026-13-45T99:00:00Z",
            "kind": "video",
            "title": "",
        }
    },
    {"content": b"--x\r\nnot multipart", "headers": {"Content-Type": "multipart/form-data; boundary=x"}},
    {"content": b'{"title": "\\u0000", "request_id": "\\ud800"}', "headers": {"Content-Type": "application/json"}},
    {"content": b"[" * 100_000, "headers": {"Content-Type": "application/json"}},
]
IDS = ["0" * 500, "' OR 1=1 --", "id%00"]
QUERIES = [
    {"limit": "-1"},
    {"limit": "abc"},
    {"limit": str(2**63)},
    {"offset": str(2**63)},
    {"category": "a\x00"},
    {"cursor": "////"},
    {"cursor": "W10"},
    {"start": "2026-02-30"},
    {"equipment": ["x"] * 50},
    {"premium": "perhaps"},
    {"level": "guru"},
]


def test_no_route_answers_500_to_bad_input(platform: Platform, client: TestClient) -> None:
    admin = make_account(platform, role="admin")
    documented = client.get("/openapi.json").json()["paths"]
    failures: list[str] = []

    def check(method: str, route: APIRoute, response: object, what: str) -> None:
        status = response.status_code  # type: ignore[attr-defined]
        if status >= 500 or str(status) not in documented[route.path][method.lower()]["responses"]:
            failures.append(f"{method} {what}: {status} {response.text[:200]}")  # type: ignore[attr-defined]
        elif status >= 400:
            assert set(response.json()) == {"error"}, response.text  # type: ignore[attr-defined]

    routes = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute) and TAGS & set(r.tags)]
    assert len(routes) >= 30
    for route in routes:
        for method in route.methods:
            for junk_id in IDS:
                path = re.sub(r"\{[^}]+\}", junk_id, route.path)
                if "{gateway}" in route.path:
                    path = route.path.replace("{gateway}", "sandbox")
                for body in BODIES:
                    extra = dict(body)
                    headers = {**admin.headers, **extra.pop("headers", {}), "Idempotency-Key": "junk"}  # type: ignore[dict-item]
                    response = client.request(method, path, headers=headers, **extra)  # type: ignore[arg-type]
                    check(method, route, response, f"{path} {str(body)[:80]}")
            if method == "GET":
                for query in QUERIES:
                    response = client.get(re.sub(r"\{[^}]+\}", "nope", route.path), params=query, headers=admin.headers)
                    check(method, route, response, f"{route.path} {query}")
    assert failures == []
