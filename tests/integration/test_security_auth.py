"""Security defects of auth (issue 7), over HTTP on SQLite and PostgreSQL: OIDC pre-hijack, lockout as a
denial of service, sign-up flooding, account enumeration, the last admin, resend's documented body, lengths."""

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import select

from platform_api.auth import service
from platform_api.auth.oidc import JwksCache, get_jwks_cache
from platform_api.auth.router import admin_router, router, users_router
from platform_api.auth.tables import LoginAttempt, User
from platform_api.config import PlatformSettings
from platform_api.email.dev import list_messages
from platform_api.email.router import router as mailbox_router
from platform_api.errors import ApiError, install_error_handlers
from platform_api.runtime import Platform, open_platform

pytestmark = pytest.mark.security

PASSWORD = "correct horse battery"
ISSUER, AUDIENCE = "https://accounts.google.test", "fitrec-android.apps.test"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
JWK = {**json.loads(RSAAlgorithm.to_jwk(KEY.public_key())), "kid": "key-1", "use": "sig", "alg": "RS256"}

Make = Callable[..., tuple[TestClient, Platform]]


@pytest.fixture
def make_client(db_url: str, tmp_path: Path) -> Iterator[Make]:
    platforms: list[Platform] = []

    def _make(**overrides: Any) -> tuple[TestClient, Platform]:
        google = {"issuers": [ISSUER], "audiences": [AUDIENCE], "jwks_uri": "https://google.test/jwks"}
        settings = PlatformSettings(
            FITREC_DATA_DIR=tmp_path,
            DATABASE_URL=db_url,
            jwt_secret="security-test-secret-0123456789abcdef",
            oidc_providers={"google": google},
            **overrides,
        )
        app = FastAPI()
        install_error_handlers(app)
        for r in (router, users_router, admin_router, mailbox_router):
            app.include_router(r)
        cache = JwksCache(fetch=lambda uri: {"keys": [JWK]})
        app.dependency_overrides[get_jwks_cache] = lambda: cache
        app.state.platform = open_platform(settings)
        platforms.append(app.state.platform)
        return TestClient(app), app.state.platform

    yield _make
    for p in platforms:
        p.close()


def from_address(client: TestClient, address: str) -> TestClient:
    """Another client of the same app, connecting from `address`."""
    return TestClient(client.app, client=(address, 40000))


def sign_up(client: TestClient, addr: str, password: str = PASSWORD) -> Any:
    return client.post("/v1/auth/signup", json={"email": addr, "password": password})


def user_id(platform: Platform, addr: str) -> str:
    with platform.sessions() as session:
        found = session.scalar(select(User.id).where(User.email == addr))
    assert found is not None
    return found


def login(client: TestClient, addr: str, password: str = PASSWORD) -> Any:
    return client.post("/v1/auth/login", json={"email": addr, "password": password})


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def google_sign_in(client: TestClient, *, email: str, sub: str = "google-sub-1") -> Any:
    nonce = client.post("/v1/auth/oidc/nonce").json()["nonce"]
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 600, "nonce": nonce}
    token = jwt.encode(
        {**claims, "email": email, "email_verified": True}, KEY, algorithm="RS256", headers={"kid": "key-1"}
    )
    return client.post("/v1/auth/oidc/google", json={"id_token": token, "nonce": nonce})


def error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    err: dict[str, Any] = response.json()["error"]
    assert err["status"] == status and err["message"]
    if code:
        assert err["code"] == code
    return err


# --- 1: pre-hijack through OIDC linking --------------------------------------------------------------------


def test_oidc_link_ends_every_session_of_the_unverified_squatter(make_client: Make) -> None:
    client, platform = make_client()
    attacker = from_address(client, "198.51.100.66")
    assert sign_up(attacker, "victim@example.com", "attacker-password").status_code < 300
    stolen = login(attacker, "victim@example.com", "attacker-password").json()
    spare = login(attacker, "victim@example.com", "attacker-password").json()
    assert attacker.get("/v1/users/me", headers=bearer(stolen)).status_code == 200

    # The victim signs in with Google for that address: the account is linked to her identity.
    victim = google_sign_in(client, email="victim@example.com")
    assert victim.status_code == 200, victim.text
    assert client.get("/v1/users/me", headers=bearer(victim.json())).json()["email_verified"] is True

    # The squatter keeps nothing: no access token, no refresh family, no password.
    for tokens in (stolen, spare):
        error(attacker.get("/v1/users/me", headers=bearer(tokens)), 401)
        error(attacker.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401)
    error(login(attacker, "victim@example.com", "attacker-password"), 401)
    with platform.sessions() as session:  # nor an address exempt from the account-wide sign-in limit
        assert session.scalars(select(LoginAttempt.key).where(LoginAttempt.succeeded.is_(True))).all() == []
    # The victim's own session is unaffected, and a second Google sign-in ends nothing.
    again = google_sign_in(client, email="victim@example.com")
    assert client.get("/v1/users/me", headers=bearer(victim.json())).status_code == 200
    assert client.get("/v1/users/me", headers=bearer(again.json())).status_code == 200


# --- 3: lockout must not be a denial of service ------------------------------------------------------------


def test_failures_from_one_address_do_not_lock_the_owner_out(make_client: Make) -> None:
    client, _ = make_client(
        login_max_failures_per_account_address=3, login_max_failures_per_account=50, login_max_failures_per_address=20
    )
    sign_up(client, "ada@example.com")
    stranger, owner = from_address(client, "198.51.100.7"), from_address(client, "203.0.113.5")
    for _ in range(3):
        error(login(stranger, "ada@example.com", "wrong-password"), 401, "invalid_credentials")
    # Brute force from that address is blocked, even with the right password ...
    refused = error(login(stranger, "ada@example.com"), 429, "rate_limited")
    assert "from this address" in refused["message"]
    # ... but the owner, elsewhere, signs in.
    assert login(owner, "ada@example.com").status_code == 200


def test_account_wide_limit_stops_distributed_guessing_but_spares_the_owners_address(make_client: Make) -> None:
    client, _ = make_client(
        login_max_failures_per_account_address=2, login_max_failures_per_account=4, login_max_failures_per_address=20
    )
    sign_up(client, "ada@example.com")
    home = from_address(client, "203.0.113.5")
    assert login(home, "ada@example.com").status_code == 200  # the owner signed in from home before
    for i in range(2):
        bot = from_address(client, f"198.51.100.{10 + i}")
        for _ in range(2):
            error(login(bot, "ada@example.com", "wrong-password"), 401)
    # Four failures over the account: any new address is refused, right password or not.
    error(login(from_address(client, "198.51.100.99"), "ada@example.com"), 429, "rate_limited")
    # The address the owner signed in from keeps working.
    assert login(home, "ada@example.com").status_code == 200


# --- 4: sign-up and resend are rate limited -----------------------------------------------------------------


def test_sign_up_is_rate_limited_per_address_and_per_email(make_client: Make) -> None:
    client, platform = make_client(signup_max_per_address=3, signup_max_per_email=2)
    flooder = from_address(client, "198.51.100.20")
    for i in range(3):
        assert sign_up(flooder, f"u{i}@example.com").status_code == 202
    limited = sign_up(flooder, "u9@example.com")
    error(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) >= 1

    # Per email: from ever new addresses, the same address is mailed twice at most.
    for i in range(2):
        assert sign_up(from_address(client, f"203.0.113.{i}"), "ada@example.com").status_code == 202
    error(sign_up(from_address(client, "203.0.113.77"), "ada@example.com"), 429, "rate_limited")
    with platform.sessions() as session:
        assert session.scalar(select(User.id).where(User.email == "u9@example.com")) is None
        assert list_messages(session, recipient="u9@example.com")[1] == 0
        assert list_messages(session, recipient="ada@example.com")[1] == 2  # the link, then a notice


def test_verification_resend_is_rate_limited_per_address_and_per_email(make_client: Make) -> None:
    client, _ = make_client(signup_max_per_address=3, signup_max_per_email=2)
    flooder = from_address(client, "198.51.100.21")
    for i in range(3):
        assert flooder.post("/v1/auth/verify-email/resend", json={"email": f"n{i}@example.com"}).status_code == 202
    error(flooder.post("/v1/auth/verify-email/resend", json={"email": "n9@example.com"}), 429, "rate_limited")
    for i in range(2):
        other = from_address(client, f"203.0.113.{i}")
        assert other.post("/v1/auth/verify-email/resend", json={"email": "ada@example.com"}).status_code == 202
    third = from_address(client, "203.0.113.50")
    error(third.post("/v1/auth/verify-email/resend", json={"email": "ada@example.com"}), 429, "rate_limited")


# --- 7: no account enumeration through sign-up --------------------------------------------------------------


def test_sign_up_answers_alike_for_new_and_existing_emails(make_client: Make) -> None:
    client, platform = make_client()
    new = sign_up(client, "ada@example.com")
    existing = sign_up(client, "ADA@example.com", "someone else's password")
    assert new.status_code == existing.status_code == 202
    assert new.json() == existing.json()
    assert "id" not in new.json()

    # One account, its password unchanged; the owner got a notice instead of a second link.
    with platform.sessions() as session:
        assert len(session.scalars(select(User)).all()) == 1
        mails = list_messages(session, recipient="ada@example.com")[0]
    assert [m.subject for m in reversed(mails)] == [
        "Confirm your email for fitrec",
        "Someone tried to sign up to fitrec with your email",
    ]
    assert "verify-email?token=" not in mails[0].body
    error(login(client, "ada@example.com", "someone else's password"), 401)
    assert login(client, "ada@example.com").status_code == 200

    # The OpenAPI document describes exactly that answer, and no 409 any more.
    responses = client.get("/openapi.json").json()["paths"]["/v1/auth/signup"]["post"]["responses"]
    assert "202" in responses and "201" not in responses and "409" not in responses
    assert responses["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/SignUpAccepted")


# --- 6: the last admin ---------------------------------------------------------------------------------------


def test_the_last_admin_cannot_be_demoted(make_client: Make) -> None:
    client, platform = make_client()
    for addr in ("root@example.com", "coach@example.com"):
        sign_up(client, addr)
    root_id, coach_id = user_id(platform, "root@example.com"), user_id(platform, "coach@example.com")
    with platform.sessions() as session:
        service.set_role(session, user_id=root_id, role="admin")
    root = login(client, "root@example.com").json()

    refused = error(client.put(f"/v1/admin/users/{root_id}/role", json={"role": "user"}, headers=bearer(root)), 409)
    assert refused["code"] == "last_admin"
    assert client.get("/v1/users/me", headers=bearer(root)).json()["role"] == "admin"

    # With a second admin, one may step down; then the other is the last one.
    promoted = client.put(f"/v1/admin/users/{coach_id}/role", json={"role": "admin"}, headers=bearer(root))
    assert promoted.status_code == 200
    assert (
        client.put(f"/v1/admin/users/{root_id}/role", json={"role": "trainer"}, headers=bearer(root)).status_code == 200
    )
    coach = login(client, "coach@example.com").json()
    error(client.put(f"/v1/admin/users/{coach_id}/role", json={"role": "user"}, headers=bearer(coach)), 409)
    # Re-stating the role of the last admin is not a removal.
    assert (
        client.put(f"/v1/admin/users/{coach_id}/role", json={"role": "admin"}, headers=bearer(coach)).status_code == 200
    )


def test_two_admins_demoting_each_other_at_once_leave_one(make_client: Make) -> None:
    client, platform = make_client()
    ids = []
    for addr in ("a@example.com", "b@example.com"):
        sign_up(client, addr)
        ids.append(user_id(platform, addr))
        with platform.sessions() as session:
            service.set_role(session, user_id=ids[-1], role="admin")
    barrier, results = threading.Barrier(2), []

    def demote(target: str) -> None:
        with platform.sessions() as session:
            barrier.wait()
            try:
                service.set_role(session, user_id=target, role="user")
                results.append("ok")
            except ApiError as exc:
                results.append(exc.code)

    threads = [threading.Thread(target=demote, args=(target,)) for target in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["last_admin", "ok"]
    with platform.sessions() as session:
        assert len(session.scalars(select(User).where(User.role == "admin")).all()) == 1


# --- 15, 12/13: what the OpenAPI document says is what the routes do ---------------------------------------


def test_resend_answers_the_json_body_its_openapi_documents(make_client: Make) -> None:
    client, _ = make_client()
    answer = client.post("/v1/auth/verify-email/resend", json={"email": "nobody@example.com"})
    assert answer.status_code == 202 and answer.headers["content-type"] == "application/json"
    documented = client.get("/openapi.json").json()
    ref = documented["paths"]["/v1/auth/verify-email/resend"]["post"]["responses"]["202"]["content"][
        "application/json"
    ]["schema"]["$ref"]
    schema = documented["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(answer.json()) == set(schema["properties"]) and answer.json()["email"] == "nobody@example.com"


def _strings_without_max_length(schema: dict[str, Any], components: dict[str, Any], where: str) -> list[str]:
    if "$ref" in schema:
        return _strings_without_max_length(components[schema["$ref"].rsplit("/", 1)[1]], components, where)
    found = []
    for option in schema.get("anyOf", []):
        found += _strings_without_max_length(option, components, where)
    if schema.get("type") == "string" and "maxLength" not in schema and "enum" not in schema:
        found.append(where)
    if schema.get("type") == "array":
        found += _strings_without_max_length(schema.get("items", {}), components, f"{where}[]")
    for name, prop in schema.get("properties", {}).items():
        found += _strings_without_max_length(prop, components, f"{where}.{name}")
    return found


def test_every_string_the_auth_routes_accept_has_a_max_length(make_client: Make) -> None:
    client, _ = make_client()
    doc = client.get("/openapi.json").json()
    components = doc["components"]["schemas"]
    unbounded = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            for param in op.get("parameters", []):
                unbounded += _strings_without_max_length(
                    param["schema"], components, f"{method} {path} {param['name']}"
                )
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body:
                unbounded += _strings_without_max_length(body, components, f"{method} {path} body")
    assert unbounded == []
    long_equipment = {"email": "ada@example.com", "password": PASSWORD, "equipment": ["x" * 10_000]}
    error(client.post("/v1/auth/signup", json=long_equipment), 422)
