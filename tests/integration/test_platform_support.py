"""Shared fixtures of the platform tests (plans, workouts, health, content, payments, entitlements).

Imported by the test_platform_* modules; it holds no tests itself.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from platform_api.auth.schemas import Profile
from platform_api.auth.service import new_user, start_session
from platform_api.catalogue.service import seed_catalogue
from platform_api.config import PlatformSettings
from platform_api.email.tables import MailboxMessage
from platform_api.errors import install_error_handlers
from platform_api.events.tables import EventLog
from platform_api.routers import ROUTERS
from platform_api.runtime import Platform, open_platform

JWT_SECRET = "platform-test-jwt-secret-0123456789abcdef"
ENCRYPTION_KEY = "platform-test-encryption-key-0123456789"
SANDBOX_SECRET = "whsec_platform_test_sandbox"


def make_settings(db_url: str, data_dir: Path, **overrides: Any) -> PlatformSettings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": db_url,
        "jwt_secret": JWT_SECRET,
        "encryption_key": ENCRYPTION_KEY,
        "sandbox_webhook_secret": SANDBOX_SECRET,
        "sandbox_confirm_delay_s": 0,
        "max_upload_bytes": 64 * 1024,
        "email_url": "dev://",
    }
    values.update(overrides)
    return PlatformSettings(**values)


@pytest.fixture
def platform(db_url: str, tmp_path: Path) -> Iterator[Platform]:
    """The platform on the parametrised backend, migrated, with the catalogue seeded."""
    p = open_platform(make_settings(db_url, tmp_path))
    with p.sessions() as session:
        seed_catalogue(session)
    yield p
    p.close()


def make_app(platform: Platform) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.state.platform = platform
    return app


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(make_app(platform), raise_server_exceptions=False) as c:
        yield c


@dataclass(frozen=True)
class Account:
    id: str
    email: str
    headers: dict[str, str]


_counter = iter(range(1_000_000))


def make_account(platform: Platform, *, role: str = "user", region: str = "US") -> Account:
    """A verified user with a signed-in session, as the auth service makes them."""
    n = next(_counter)
    address = f"{role}{n}@example.test"
    with platform.sessions() as session:
        user = new_user(
            session,
            email=address,
            password_hash=None,
            profile=Profile(region=region),
            verified=True,
            role=role,
            display_name=f"{role} {n}",
        )
        pair = start_session(session, settings=platform.settings, user=user, method="password", client_address=None)
        session.commit()
        return Account(id=user.id, email=address, headers={"Authorization": f"Bearer {pair.access_token}"})


def events_of(
    platform: Platform, event_type: str, *, user_id: str | None = None, item_id: str | None = None
) -> list[EventLog]:
    with platform.sessions() as session:
        query = select(EventLog).where(EventLog.event_type == event_type)
        if user_id is not None:
            query = query.where(EventLog.user_id == user_id)
        if item_id is not None:
            query = query.where(EventLog.item_id == item_id)
        return list(session.scalars(query.order_by(EventLog.occurred_at)))


def event_count(platform: Platform) -> int:
    with platform.sessions() as session:
        return session.scalar(select(func.count()).select_from(EventLog)) or 0


def mailbox(platform: Platform, recipient: str) -> list[MailboxMessage]:
    with platform.sessions() as session:
        return list(session.scalars(select(MailboxMessage).where(MailboxMessage.recipient == recipient)))


def error_code(response: Any) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["status"] == response.status_code
    return str(body["error"]["code"])
