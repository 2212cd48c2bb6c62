"""Start-up refuses unsafe settings outside dev (issue 7, item 2), the trusted-proxy setting (item 5), and
every uvicorn launch of the project leaves forwarded headers to the app (item 5)."""

import subprocess
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from pydantic import ValidationError

from platform_api.config import DEV_PLACEHOLDER, PlatformSettings

pytestmark = pytest.mark.security

REQUIRED = {"jwt_secret": "j" * 40, "encryption_key": "e" * 40}
LIVE = {
    "payment_mode": "live",
    "stripe_api_key": "sk_live_" + "s" * 30,
    "stripe_webhook_secret": "whsec_" + "w" * 30,
    "regional_api_key": "r" * 32,
    "regional_webhook_secret": "rw" * 16,
}


def production(**values: Any) -> PlatformSettings:
    return PlatformSettings(FITREC_ENV="production", **values)


def test_production_refuses_sandbox_payments() -> None:
    with pytest.raises(ValidationError, match="payment_mode"):
        production(**REQUIRED)
    with pytest.raises(ValidationError, match="payment_mode"):
        production(**REQUIRED, payment_mode="sandbox", sandbox_webhook_secret="whsec_" + "x" * 40)


@pytest.mark.parametrize("name", ["stripe_webhook_secret", "regional_webhook_secret", "stripe_api_key"])
@pytest.mark.parametrize("placeholder", [DEV_PLACEHOLDER, "whsec_sandbox_" + DEV_PLACEHOLDER])
def test_production_refuses_default_or_placeholder_payment_secrets(name: str, placeholder: str) -> None:
    with pytest.raises(ValidationError, match=name):
        production(**REQUIRED, **{**LIVE, name: placeholder})


def test_production_with_real_secrets_starts_and_dev_keeps_the_sandbox() -> None:
    assert production(**REQUIRED, **LIVE).payment_mode == "live"
    dev = PlatformSettings()
    assert dev.environment == "dev" and dev.payment_mode == "sandbox"


def test_trusted_proxies_are_empty_by_default_and_parsed_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert PlatformSettings().trusted_proxies == []
    monkeypatch.setenv("FITREC_PLATFORM_TRUSTED_PROXIES", "10.0.0.1, 172.16.0.0/12,::1")
    assert PlatformSettings().trusted_proxies == ["10.0.0.1", "172.16.0.0/12", "::1"]
    for bad in ("*", "proxy.internal", "10.0.0.300"):
        monkeypatch.setenv("FITREC_PLATFORM_TRUSTED_PROXIES", bad)
        with pytest.raises(ValidationError, match="trusted_proxies"):
            PlatformSettings()


def test_fitrec_serve_turns_uvicorn_proxy_headers_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pipelines.cli import app

    calls: list[dict[str, Any]] = []
    monkeypatch.setenv("FITREC_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: calls.append(kwargs))
    result = CliRunner().invoke(app, ["serve", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert [c["proxy_headers"] for c in calls] == [False]


def test_serving_benchmark_turns_uvicorn_proxy_headers_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pipelines import bench_serving
    from pipelines.reliability import stack  # noqa: F401 - imported before Popen is replaced (imports run uname)

    launched: list[list[str]] = []

    def popen(args: list[str], **_: Any) -> None:
        launched.append(args)
        raise RuntimeError("launched")

    monkeypatch.setattr(subprocess, "Popen", popen)
    folder = bench_serving.BenchFolder(data_dir=tmp_path, users=[])
    with pytest.raises(RuntimeError, match="launched"), bench_serving.running_app("memory", folder, {}, env={}):
        pass
    [args] = launched
    assert "uvicorn" in args and "--no-proxy-headers" in args
