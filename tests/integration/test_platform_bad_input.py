"""Bad input never becomes a 500: every route of plans, workouts, health, content, payments and
entitlements gets malformed bodies, junk path ids and junk queries, on SQLite and PostgreSQL."""

import re

import test_platform_support as support
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from test_platform_support import make_account

from platform_api.routers import ROUTERS
from platform_api.runtime import Platform

# Fixtures shared by the platform tests.
client = support.client
platform = support.platform

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
]
IDS = ["0" * 500, "' OR 1=1 --"]
QUERIES = [
    {"limit": "-1"},
    {"limit": "abc"},
    {"cursor": "////"},
    {"cursor": "W10"},
    {"start": "2026-02-30"},
    {"equipment": ["x"] * 50},
    {"premium": "perhaps"},
    {"level": "guru"},
]


def test_no_route_answers_500_to_bad_input(platform: Platform, client: TestClient) -> None:
    admin = make_account(platform, role="admin")
    routes = [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute) and TAGS & set(r.tags)]
    assert len(routes) >= 30
    failures: list[str] = []
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
                    if response.status_code >= 500:
                        failures.append(f"{method} {path} {body}: {response.status_code} {response.text[:200]}")
                    elif response.status_code >= 400:
                        assert set(response.json()) == {"error"}, response.text
            if method == "GET":
                for query in QUERIES:
                    response = client.get(re.sub(r"\{[^}]+\}", "nope", route.path), params=query, headers=admin.headers)
                    if response.status_code >= 500:
                        failures.append(f"GET {route.path} {query}: {response.status_code}")
    assert failures == []
