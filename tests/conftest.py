"""Shared fixtures: real PostgreSQL and Redis when reachable; fail (not skip) under CI."""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import sqlalchemy as sa
    from support import Inbox

DEFAULT_PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"

# The servers CI points at are handed to tests through fixtures only; taken out of the
# environment so no test falls back on a shared database or data folder by accident.
SERVER_DATABASE_URL = os.environ.pop("DATABASE_URL", None)
SERVER_REDIS_URL = os.environ.pop("REDIS_URL", None)
for _name in ("FITREC_DATA_DIR", "MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
    os.environ.pop(_name, None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for marker in ("unit", "integration", "e2e"):
            if marker in parts:
                item.add_marker(getattr(pytest.mark, marker))


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} unreachable: {exc}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _admin_url() -> str:
    from platform_api.config import normalise_db_url

    url = SERVER_DATABASE_URL
    if not url:
        return DEFAULT_PG_ADMIN
    # Administer databases through the server's maintenance database.
    base = normalise_db_url(url).rsplit("/", 1)[0]
    return f"{base}/postgres"


@pytest.fixture(scope="session")
def pg_admin() -> Iterator["sa.Engine"]:
    """An AUTOCOMMIT engine on the server's maintenance database."""
    import sqlalchemy as sa

    engine = sa.create_engine(_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "unreachable"
        _unavailable("PostgreSQL", exc)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url(pg_admin: "sa.Engine") -> Iterator[str]:
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    import sqlalchemy as sa

    name = f"fitrec_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield pg_admin.url.set(database=name).render_as_string(hide_password=False)
    with pg_admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    url = SERVER_REDIS_URL or DEFAULT_REDIS
    try:
        redis.Redis.from_url(url).ping()
    except Exception as exc:  # noqa: BLE001
        _unavailable("Redis", exc)
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    import redis

    prefix = f"fitrec-test-{uuid.uuid4().hex[:8]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The platform database on both backends: embedded SQLite and the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'platform.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def smtp_server() -> Iterator[tuple[str, "Inbox"]]:
    """A real SMTP server on a free loopback port: (smtp:// URL, inbox of received messages)."""
    from aiosmtpd.controller import Controller
    from support import Inbox, free_port

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{controller.port}", inbox
    finally:
        controller.stop()
