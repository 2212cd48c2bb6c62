"""The OpenAPI document tells the truth about the routes the input guard protects (issue 7, item 15).

Schemathesis generates valid and invalid requests for a few operations of the deployed app
(serving.app.create_app, in-process over ASGI, SQLite) and checks that each answer's status is
documented and its body matches the documented schema. The fuzz run over every operation
belongs to the reliability suite (pipelines/reliability/fuzz.py).
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from test_platform_support import make_account, make_settings

from platform_api.catalogue.service import seed_catalogue
from platform_api.runtime import Platform, open_platform
from serving.app import create_app
from serving.config import ServingSettings

pytestmark = pytest.mark.robustness
OPERATIONS = [
    ("/v1/events", "POST"),
    ("/v1/workouts", "POST"),
    ("/v1/plans/{plan_id}/enrollments", "POST"),
    ("/v1/health/integrations", "POST"),
    ("/v1/credits/charges", "POST"),
    ("/v1/payments", "GET"),
    ("/v1/content", "GET"),
    ("/v1/users/me", "PATCH"),
]


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    p = open_platform(make_settings(f"sqlite:///{tmp_path / 'platform.db'}", tmp_path))
    with p.sessions() as session:
        seed_catalogue(session)
    yield p
    p.close()


def without_lifespan(app: Any) -> Any:
    """The app without its start-up (model, features, cache): schemathesis would run it; the platform is set."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            await send({"type": f"{message['type']}.complete"})
            if message["type"] == "lifespan.shutdown":
                return

    return asgi


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_answers_agree_with_the_document(platform: Platform, tmp_path: Path, mode: GenerationMode) -> None:
    app = create_app(ServingSettings(FITREC_DATA_DIR=tmp_path, model_refresh_s=0))
    app.state.platform = platform
    schema = schemathesis.openapi.from_asgi("/openapi.json", without_lifespan(app))
    headers = make_account(platform, role="admin").headers
    failures: list[str] = []
    for path, method in OPERATIONS:
        operation = schema[path][method]

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            try:
                case.call_and_validate(
                    headers={**headers, "Idempotency-Key": "k-1"},
                    checks=[status_code_conformance, response_schema_conformance],
                )
            except FailureGroup as group:  # collected per operation rather than shrunk one by one
                failures.extend(f"{case.method} {case.path}: {str(exc)[:300]}" for exc in group.exceptions)

        check()
    assert failures == []
