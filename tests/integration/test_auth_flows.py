"""Auth over HTTP on SQLite and on the real PostgreSQL: sign-up → verify (mail received over SMTP) →
login → refresh rotation → reuse detection; logout; login rate limits; API key scopes; roles; ownership."""

import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from support import Inbox

from platform_api.auth import ratelimit, service
from platform_api.auth.ownership import get_owned, owned_by
from platform_api.auth.router import admin_router, router, user_public, users_router
from platform_api.auth.tables import AuthSession, EmailVerification, LoginAttempt, User
from platform_api.config import PlatformSettings
from platform_api.db import Base
from platform_api.deps import CurrentPrincipal, CurrentUser, SessionDep, TrainerUser, require_scope
from platform_api.email.dev import list_messages
from platform_api.email.router import router as mailbox_router
from platform_api.errors import ApiError, install_error_handlers
from platform_api.events.tables import EventLog
from platform_api.runtime import Platform, open_platform

PASSWORD = "correct horse battery"
SECRET = "integration-test-secret-0123456789abcdef"
AUTH_TABLES = {
    "user_account",
    "email_verification",
    "auth_session",
    "refresh_token",
    "oidc_identity",
    "oidc_nonce",
    "api_key",
    "login_attempt",
    "mailbox_message",
}


# --- fixtures ---------------------------------------------------------------------------------


# Routes standing in for other routers: a scope-guarded service route, a trainer route, an owned resource.
probe = APIRouter(prefix="/probe")


@probe.post("/events", dependencies=[Depends(require_scope("events:write"))])
def probe_events() -> dict[str, bool]:
    return {"ok": True}


@probe.get("/trainer")
def probe_trainer(user: TrainerUser) -> dict[str, str]:
    return {"id": user.id}


@probe.get("/principal")
def probe_principal(principal: CurrentPrincipal) -> dict[str, Any]:
    return {"kind": principal.kind, "user_id": principal.user_id}


@probe.get("/sessions/{session_id}")
def probe_owned_session(session_id: str, user: CurrentUser, session: SessionDep) -> dict[str, str]:
    row = get_owned(session, AuthSession, session_id, user, what="session")
    return {"id": row.id, "user_id": row.user_id}


@pytest.fixture
def make_client(db_url: str, tmp_path: Path) -> Iterator[Callable[..., tuple[TestClient, Platform]]]:
    platforms: list[Platform] = []

    def _make(**overrides: Any) -> tuple[TestClient, Platform]:
        settings = PlatformSettings(FITREC_DATA_DIR=tmp_path, DATABASE_URL=db_url, jwt_secret=SECRET, **overrides)
        app = FastAPI()
        install_error_handlers(app)
        for r in (router, users_router, admin_router, mailbox_router, probe):
            app.include_router(r)
        app.state.platform = open_platform(settings)
        platforms.append(app.state.platform)
        return TestClient(app), app.state.platform

    yield _make
    for p in platforms:
        p.close()


def sign_up(client: TestClient, addr: str, **extra: Any) -> dict[str, Any]:
    """Sign up over HTTP; the account as /v1/users/me would show it (sign-up's answer names no account)."""
    response = client.post("/v1/auth/signup", json={"email": addr, "password": PASSWORD, **extra})
    assert response.status_code == 202, response.text
    assert response.json()["email"] == addr.lower()
    platform: Platform = client.app.state.platform  # type: ignore[attr-defined]
    with platform.sessions() as session:
        user = session.scalar(select(User).where(User.email == addr.lower()))
    assert user is not None
    return user_public(user).model_dump(mode="json")


def login(client: TestClient, addr: str, password: str = PASSWORD) -> dict[str, Any]:
    response = client.post("/v1/auth/login", json={"email": addr, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def events_of(platform: Platform, user_id: str) -> list[EventLog]:
    with platform.sessions() as session:
        return list(
            session.scalars(
                select(EventLog).where(EventLog.user_id == user_id).order_by(EventLog.occurred_at, EventLog.event_type)
            ).all()
        )


def link_token(body: str) -> str:
    match = re.search(r"/v1/auth/verify-email\?token=(\S+)", body)
    assert match, body
    return match.group(1)


def make_admin(client: TestClient, platform: Platform, addr: str = "root@example.com") -> dict[str, Any]:
    user = sign_up(client, addr)
    with platform.sessions() as session:
        service.set_role(session, user_id=user["id"], role="admin")
    return login(client, addr)


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    err: dict[str, Any] = response.json()["error"]
    assert err["status"] == status and err["message"]
    if code:
        assert err["code"] == code
    return err


# --- the main flow ----------------------------------------------------------------------------


@pytest.mark.security
def test_sign_up_verify_login_refresh_rotation_and_reuse(make_client: Any, smtp_server: tuple[str, Inbox]) -> None:
    url, inbox = smtp_server
    client, platform = make_client(email_url=url, public_base_url="https://app.fitrec.test")

    user = sign_up(
        client,
        "Ada@Example.com",
        goal="build_strength",
        fitness_level="intermediate",
        equipment=["dumbbell"],
        region="DE",
    )
    assert user["email"] == "ada@example.com" and not user["email_verified"] and user["role"] == "user"
    assert "password" not in str(user) and "hash" not in str(user)

    # The verification email arrived at the real SMTP server, with a single-use link.
    assert len(inbox.messages) == 1
    mail = inbox.messages[0]
    assert mail["To"] == "ada@example.com" and "Confirm your email" in mail["Subject"]
    assert "https://app.fitrec.test/v1/auth/verify-email?token=" in mail.get_content()
    token = link_token(mail.get_content())

    # user.created was committed with the account, with a valid profile.
    [created] = events_of(platform, user["id"])
    assert created.event_type == "user.created"
    assert created.properties["goal"] == "build_strength" and created.properties["region"] == "DE"

    # Only the token's hash is stored.
    with platform.sessions() as session:
        stored = session.scalar(select(EmailVerification.token_hash))
    assert stored is not None and token not in stored and len(stored) == 64

    verified = client.get("/v1/auth/verify-email", params={"token": token})
    assert verified.status_code == 200, verified.text
    assert verified.json() == {"user_id": user["id"], "email": "ada@example.com", "email_verified": True}
    assert_error(client.get("/v1/auth/verify-email", params={"token": token}), 409, "link_used")
    assert [e.event_type for e in events_of(platform, user["id"])] == ["user.created", "user.email_verified"]

    # Login: the access token works for /v1/users/me.
    first = login(client, "ADA@example.com")
    assert first["token_type"] == "bearer" and first["expires_in"] == 900
    me = client.get("/v1/users/me", headers=bearer(first))
    assert me.status_code == 200 and me.json()["email_verified"] is True
    assert_error(client.get("/v1/users/me"), 401)
    assert_error(client.get("/v1/users/me", headers={"Authorization": "Bearer garbage"}), 401)

    # Refresh rotates: a new pair, the old refresh token is spent.
    second = client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}).json()
    assert second["refresh_token"] != first["refresh_token"]
    third = client.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}).json()
    assert client.get("/v1/users/me", headers=bearer(third)).status_code == 200

    # Reusing a rotated token (a stolen copy) revokes the whole family, including the newest tokens.
    reuse = client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert_error(reuse, 401, "refresh_token_reused")
    assert_error(
        client.post("/v1/auth/refresh", json={"refresh_token": third["refresh_token"]}), 401, "session_revoked"
    )
    assert_error(client.get("/v1/users/me", headers=bearer(third)), 401)
    with platform.sessions() as session:
        assert session.scalar(select(AuthSession.revoked_reason)) == "reuse_detected"

    # A new login is a new family, unaffected.
    fresh = login(client, "ada@example.com")
    assert client.get("/v1/users/me", headers=bearer(fresh)).status_code == 200


@pytest.mark.security
def test_concurrent_use_of_one_refresh_token_is_reuse(make_client: Any) -> None:
    client, platform = make_client()
    sign_up(client, "ada@example.com")
    tokens = login(client, "ada@example.com")
    barrier, results = threading.Barrier(2), []

    def use() -> None:
        with platform.sessions() as session:
            barrier.wait()
            try:
                service.refresh(session, settings=platform.settings, refresh_token=tokens["refresh_token"])
                results.append("ok")
            except ApiError as exc:
                results.append(exc.code)

    threads = [threading.Thread(target=use) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok", "refresh_token_reused"]
    with platform.sessions() as session:
        assert session.scalar(select(AuthSession.revoked_reason)) == "reuse_detected"


def test_sign_up_rejects_bad_input_and_duplicate_email(make_client: Any) -> None:
    client, platform = make_client()
    err = assert_error(client.post("/v1/auth/signup", json={"email": "nope", "password": PASSWORD}), 422)
    assert err["details"][0]["loc"] == "body.email"
    assert_error(client.post("/v1/auth/signup", json={"email": "a@example.com", "password": "short"}), 422)
    assert_error(
        client.post("/v1/auth/signup", json={"email": "a@example.com", "password": PASSWORD, "session_minutes": 1000}),
        422,
    )
    assert_error(
        client.post("/v1/auth/signup", content=b"{not json", headers={"content-type": "application/json"}), 422
    )
    sign_up(client, "a@example.com")
    # The same answer as for a new address (no enumeration); nothing is created.
    again = client.post("/v1/auth/signup", json={"email": "A@EXAMPLE.com", "password": PASSWORD})
    assert again.status_code == 202 and again.json()["email"] == "a@example.com"
    with platform.sessions() as session:
        assert len(session.scalars(select(User)).all()) == 1
        assert len(session.scalars(select(EventLog)).all()) == 1  # no event for the second sign-up


def test_verification_link_forged_expired_and_resend(make_client: Any) -> None:
    client, platform = make_client()
    user = sign_up(client, "ada@example.com")
    with platform.sessions() as session:
        [mail] = list_messages(session, recipient="ada@example.com")[0]
    token = link_token(mail.body)

    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert_error(client.post("/v1/auth/verify-email", json={"token": forged}), 400, "invalid_link")
    with platform.sessions() as session:  # the link's row expires (the signed token is still within its exp)
        session.execute(update(EmailVerification).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        session.commit()
    assert_error(client.post("/v1/auth/verify-email", json={"token": token}), 400, "invalid_link")

    # Resend: always 202; a new link for the unverified account, nothing for unknown addresses.
    assert client.post("/v1/auth/verify-email/resend", json={"email": "nobody@example.com"}).status_code == 202
    with platform.sessions() as session:  # the resend interval has passed
        session.execute(update(EmailVerification).values(created_at=datetime.now(UTC) - timedelta(minutes=5)))
        session.commit()
    assert client.post("/v1/auth/verify-email/resend", json={"email": "ADA@example.com"}).status_code == 202
    assert client.post("/v1/auth/verify-email/resend", json={"email": "ada@example.com"}).status_code == 202
    with platform.sessions() as session:
        mails, total = list_messages(session)
    assert total == 2  # the immediate second resend was throttled
    assert client.post("/v1/auth/verify-email", json={"token": link_token(mails[0].body)}).status_code == 200
    assert [e.event_type for e in events_of(platform, user["id"])] == ["user.created", "user.email_verified"]


def test_logout_revokes_refresh_and_access_tokens(make_client: Any) -> None:
    client, _ = make_client()
    sign_up(client, "ada@example.com")
    phone, laptop = login(client, "ada@example.com"), login(client, "ada@example.com")
    assert client.post("/v1/auth/logout", json={"refresh_token": phone["refresh_token"]}).status_code == 204
    assert_error(client.post("/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]}), 401)
    assert_error(client.get("/v1/users/me", headers=bearer(phone)), 401)
    assert client.get("/v1/users/me", headers=bearer(laptop)).status_code == 200  # the other session lives
    # Logging out again, or with an unknown token, is harmless.
    assert client.post("/v1/auth/logout", json={"refresh_token": phone["refresh_token"]}).status_code == 204
    assert client.post("/v1/auth/logout-all", headers=bearer(laptop)).status_code == 204
    assert_error(client.get("/v1/users/me", headers=bearer(laptop)), 401)
    assert_error(client.post("/v1/auth/refresh", json={"refresh_token": laptop["refresh_token"]}), 401)


def test_login_is_rate_limited_per_account_and_per_address(make_client: Any) -> None:
    client, platform = make_client(login_max_failures_per_account_address=3, login_max_failures_per_address=5)
    sign_up(client, "ada@example.com")

    # A correct password resets the (account, address) count.
    for _ in range(2):
        assert_error(
            client.post("/v1/auth/login", json={"email": "ada@example.com", "password": "wrong-pass"}),
            401,
            "invalid_credentials",
        )
    login(client, "ada@example.com")
    for _ in range(3):
        assert_error(client.post("/v1/auth/login", json={"email": "ada@example.com", "password": "wrong-pass"}), 401)
    locked = client.post("/v1/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert_error(locked, 429, "rate_limited")
    assert 1 <= int(locked.headers["Retry-After"]) <= 900

    # Another address is not limited by this address's failures: the owner elsewhere signs in.
    other = TestClient(client.app, client=("203.0.113.9", 4000))
    login(other, "ada@example.com")
    # Per address: failures across many accounts (credential stuffing) lock the address; refusals do not count.
    for i in range(5):
        assert_error(other.post("/v1/auth/login", json={"email": f"u{i}@example.com", "password": "x"}), 401)
    assert_error(other.post("/v1/auth/login", json={"email": "u9@example.com", "password": "x"}), 429)

    # After the window the account may sign in again.
    with platform.sessions() as session:
        session.execute(update(LoginAttempt).values(attempted_at=datetime.now(UTC) - timedelta(hours=1)))
        session.commit()
    login(client, "ada@example.com")


@pytest.mark.security
def test_api_keys_are_admin_made_scoped_hashed_and_revocable(make_client: Any) -> None:
    client, platform = make_client()
    admin = make_admin(client, platform)
    sign_up(client, "ada@example.com")
    ada = login(client, "ada@example.com")

    assert_error(
        client.post("/v1/admin/api-keys", json={"name": "x", "scopes": ["events:write"]}, headers=bearer(ada)), 403
    )
    assert_error(
        client.post("/v1/admin/api-keys", json={"name": "x", "scopes": ["root:all"]}, headers=bearer(admin)), 422
    )
    created = client.post(
        "/v1/admin/api-keys", json={"name": "app backend", "scopes": ["events:write"]}, headers=bearer(admin)
    )
    assert created.status_code == 201, created.text
    writer = created.json()["key"]
    reader = client.post(
        "/v1/admin/api-keys", json={"name": "reader", "scopes": ["recommendations:read"]}, headers=bearer(admin)
    ).json()["key"]
    listed = client.get("/v1/admin/api-keys", headers=bearer(admin)).json()
    assert listed["count"] == 2 and all("key" not in k for k in listed["data"])
    assert writer not in str(listed) and writer.startswith(listed["data"][1]["prefix"])

    assert client.post("/probe/events", headers={"X-API-Key": writer}).json() == {"ok": True}
    assert_error(client.post("/probe/events", headers={"X-API-Key": reader}), 403, "insufficient_scope")
    assert_error(client.post("/probe/events", headers=bearer(admin)), 403)  # users hold no scopes
    assert_error(client.post("/probe/events", headers={"X-API-Key": writer + "x"}), 401)
    assert_error(client.post("/probe/events"), 401)
    assert client.get("/probe/principal", headers={"X-API-Key": reader}).json() == {"kind": "service", "user_id": None}
    assert_error(client.get("/v1/users/me", headers={"X-API-Key": writer}), 403)  # a key is not a user

    key_id = created.json()["id"]
    revoked = client.delete(f"/v1/admin/api-keys/{key_id}", headers=bearer(admin))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert_error(client.post("/probe/events", headers={"X-API-Key": writer}), 401)
    assert_error(client.delete("/v1/admin/api-keys/nope", headers=bearer(admin)), 404)


def test_roles_take_effect_at_once_and_admin_sees_mailbox(make_client: Any) -> None:
    client, platform = make_client()
    admin = make_admin(client, platform)
    coach = sign_up(client, "coach@example.com")
    coach_tokens = login(client, "coach@example.com")
    assert_error(client.get("/probe/trainer", headers=bearer(coach_tokens)), 403)
    assert_error(
        client.put(f"/v1/admin/users/{coach['id']}/role", json={"role": "trainer"}, headers=bearer(coach_tokens)), 403
    )
    promoted = client.put(f"/v1/admin/users/{coach['id']}/role", json={"role": "trainer"}, headers=bearer(admin))
    assert promoted.json()["role"] == "trainer"
    # The role is read from the database on each request: the token issued before works as a trainer now.
    assert client.get("/probe/trainer", headers=bearer(coach_tokens)).json() == {"id": coach["id"]}
    assert client.get("/probe/trainer", headers=bearer(admin)).status_code == 200

    mailbox = client.get("/v1/admin/mailbox", params={"to": "coach@example.com"}, headers=bearer(admin))
    assert mailbox.status_code == 200 and mailbox.json()["count"] == 1
    assert "/v1/auth/verify-email?token=" in mailbox.json()["data"][0]["body"]
    assert_error(client.get("/v1/admin/mailbox", headers=bearer(coach_tokens)), 403)
    assert_error(client.get("/v1/admin/mailbox"), 401)


@pytest.mark.security
def test_owned_resources_are_404_for_others(make_client: Any) -> None:
    client, platform = make_client()
    admin = make_admin(client, platform)
    sign_up(client, "ada@example.com")
    sign_up(client, "bob@example.com")
    ada, bob = login(client, "ada@example.com"), login(client, "bob@example.com")
    with platform.sessions() as session:
        ada_id = session.scalar(select(User.id).where(User.email == "ada@example.com"))
        ada_session = session.scalar(select(AuthSession.id).where(AuthSession.user_id == ada_id))

    assert client.get(f"/probe/sessions/{ada_session}", headers=bearer(ada)).json()["user_id"] == ada_id
    assert client.get(f"/probe/sessions/{ada_session}", headers=bearer(admin)).status_code == 200
    # Bob gets exactly what a missing id gets: 404, not 403.
    not_yours = assert_error(client.get(f"/probe/sessions/{ada_session}", headers=bearer(bob)), 404)
    missing = assert_error(client.get("/probe/sessions/does-not-exist", headers=bearer(bob)), 404)
    not_yours.pop("request_id", None), missing.pop("request_id", None)  # each answer has its own id
    assert not_yours == missing

    with platform.sessions() as session:
        bob_user = session.scalar(select(User).where(User.email == "bob@example.com"))
        admin_user = session.scalar(select(User).where(User.role == "admin"))
        assert bob_user is not None and admin_user is not None
        assert len(session.scalars(owned_by(select(AuthSession), AuthSession, bob_user)).all()) == 1
        assert len(session.scalars(owned_by(select(AuthSession), AuthSession, admin_user)).all()) == 3


def test_profile_update(make_client: Any) -> None:
    client, _ = make_client()
    sign_up(client, "ada@example.com")
    tokens = login(client, "ada@example.com")
    changed = client.patch("/v1/users/me", json={"goal": "endurance", "session_minutes": 20}, headers=bearer(tokens))
    assert changed.status_code == 200 and changed.json()["goal"] == "endurance"
    assert client.get("/v1/users/me", headers=bearer(tokens)).json()["session_minutes"] == 20
    assert_error(client.patch("/v1/users/me", json={"role": "admin"}, headers=bearer(tokens)), 422)
    assert_error(client.patch("/v1/users/me", json={"goal": None}, headers=bearer(tokens)), 422)
    assert client.get("/v1/users/me", headers=bearer(tokens)).json()["role"] == "user"


def test_migration_matches_the_auth_tables(make_client: Any) -> None:
    _, platform = make_client()
    with platform.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    ours = [d for d in diffs if AUTH_TABLES & set(re.findall(r"'(\w+)'", repr(d)))]
    assert ours == []
    with platform.engine.connect() as conn:
        assert set(conn.dialect.get_table_names(conn)) >= AUTH_TABLES


def test_limiter_retry_after_is_when_the_window_frees_a_slot(make_client: Any) -> None:
    _, platform = make_client()
    window = timedelta(seconds=900)
    limiter = ratelimit.LoginRateLimiter(
        window=window, max_per_account_address=3, max_per_account=3, max_per_address=100, known_for=timedelta(days=1)
    )
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with platform.sessions() as session:
        for offset in (0, 100, 200):
            limiter.begin_attempt(session, email="ada@example.com", address=None, now=t0 + timedelta(seconds=offset))
        key = limiter.account_key("ada@example.com")

        def wait(limit: int, at: int) -> int | None:
            return ratelimit.retry_after(session, key=key, limit=limit, window=window, now=t0 + timedelta(seconds=at))

        # 3 failures, limit 3: the oldest (t0) must leave the window, at t0+900; a limit of 2 waits for t0+100 too.
        assert wait(3, 300) == 600
        assert wait(2, 300) == 700
        assert wait(3, 901) is None
        with pytest.raises(ApiError) as refused:
            limiter.begin_attempt(session, email="ADA@example.com", address=None, now=t0 + timedelta(seconds=300))
        assert refused.value.status == 429 and refused.value.headers == {"Retry-After": "600"}
