"""The first admin is made with `fitrec admin create-user` (issue 7, item 6): the password comes from a
prompt or stdin, never from an argument; the email is verified; the account signs in."""

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from pipelines.cli import app
from platform_api.auth.router import router, users_router
from platform_api.auth.tables import User
from platform_api.config import PlatformSettings
from platform_api.errors import install_error_handlers
from platform_api.runtime import open_platform

pytestmark = pytest.mark.security

PASSWORD = "a long admin passphrase"


def test_create_user_makes_a_verified_admin_who_can_sign_in(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FITREC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", db_url)
    runner = CliRunner()
    cmd = ["admin", "create-user", "--email", "Root@Example.com", "--role", "admin"]

    made = runner.invoke(app, cmd, input=PASSWORD + "\n")  # CliRunner's stdin is not a TTY
    assert made.exit_code == 0, made.output
    assert PASSWORD not in made.output
    # No way to pass the password as an argument; a second account with the email is refused.
    assert runner.invoke(app, [*cmd, "--password", PASSWORD]).exit_code != 0
    again = runner.invoke(app, cmd, input=PASSWORD + "\n")
    assert again.exit_code != 0 and "exists" in again.output
    assert runner.invoke(app, ["admin", "create-user", "--email", "x@example.com"], input="short\n").exit_code != 0

    platform = open_platform(PlatformSettings(FITREC_DATA_DIR=tmp_path, DATABASE_URL=db_url))
    try:
        with platform.sessions() as session:
            [user] = session.scalars(select(User)).all()
        assert (user.email, user.role) == ("root@example.com", "admin") and user.email_verified_at is not None
        api = FastAPI()
        install_error_handlers(api)
        api.include_router(router)
        api.include_router(users_router)
        api.state.platform = platform
        client = TestClient(api)
        tokens = client.post("/v1/auth/login", json={"email": "root@example.com", "password": PASSWORD}).json()
        me = client.get("/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
        assert me["role"] == "admin" and me["email_verified"] is True
    finally:
        platform.close()
