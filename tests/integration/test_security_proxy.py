"""X-Forwarded-For is believed only from configured proxies (issue 7, item 5), over a real uvicorn server
started as the project starts it (proxy_headers=False: the app decides whom to trust)."""

from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from support import serve_app

from platform_api.auth.tables import LoginAttempt
from platform_api.runtime import open_platform
from serving.app import create_app
from serving.config import ServingSettings

pytestmark = pytest.mark.security


def limiter_addresses(settings: ServingSettings) -> set[str]:
    platform = open_platform(settings.platform())
    try:
        with platform.sessions() as session:
            keys = session.scalars(select(LoginAttempt.key).where(LoginAttempt.key.startswith("address:"))).all()
    finally:
        platform.close()
    return {k.removeprefix("address:") for k in keys}


def failed_logins(base: str, forwarded_for: list[str]) -> list[int]:
    with httpx.Client(base_url=base, timeout=30) as http:
        return [
            http.post(
                "/v1/auth/login",
                json={"email": "ada@example.com", "password": "wrong-password"},
                headers={"X-Forwarded-For": ip},
            ).status_code
            for ip in forwarded_for
        ]


def settings_for(tmp_path: Path) -> ServingSettings:
    return ServingSettings(FITREC_DATA_DIR=tmp_path, model_refresh_s=0)


def test_forwarded_for_from_an_untrusted_peer_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FITREC_PLATFORM_LOGIN_MAX_FAILURES_PER_ADDRESS", "3")
    settings = settings_for(tmp_path)
    with serve_app(create_app(settings)) as base:
        statuses = failed_logins(base, [f"198.51.100.{i}" for i in range(5)])
    # Rotating the header changed nothing: every attempt counted against the real peer, which is then limited.
    assert statuses == [401, 401, 401, 429, 429]
    assert limiter_addresses(settings) == {"127.0.0.1"}


def test_forwarded_for_from_a_configured_proxy_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FITREC_PLATFORM_TRUSTED_PROXIES", "127.0.0.1")
    monkeypatch.setenv("FITREC_PLATFORM_LOGIN_MAX_FAILURES_PER_ADDRESS", "3")
    settings = settings_for(tmp_path)
    with serve_app(create_app(settings)) as base:
        statuses = failed_logins(base, ["198.51.100.1", "198.51.100.2", "203.0.113.9, 198.51.100.3"])
    assert statuses == [401, 401, 401]
    # The proxy's view of the client is used; of a chain, the address the proxy itself saw (the last one).
    assert limiter_addresses(settings) == {"198.51.100.1", "198.51.100.2", "198.51.100.3"}
