"""Sign in with Google/Apple over HTTP, on SQLite and PostgreSQL: id_tokens signed with a locally generated
RSA key, the provider's JWKS served by a real local HTTP server and fetched over the network."""

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import select

from platform_api.auth.oidc import JwksCache, get_jwks_cache
from platform_api.auth.router import router, users_router
from platform_api.auth.tables import OidcIdentity, User
from platform_api.config import PlatformSettings
from platform_api.errors import install_error_handlers
from platform_api.events.tables import EventLog
from platform_api.runtime import Platform, open_platform

GOOGLE_ISS, GOOGLE_AUD = "https://accounts.google.test", "fitrec-android.apps.test"
APPLE_ISS, APPLE_AUD = "https://appleid.apple.test", "app.fitrec.ios"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ROGUE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


class JwksServer:
    """Serves /google/jwks and /apple/jwks like the providers do, counting the fetches."""

    def __init__(self) -> None:
        jwk = {**json.loads(RSAAlgorithm.to_jwk(KEY.public_key())), "kid": "key-1", "use": "sig", "alg": "RS256"}
        body = json.dumps({"keys": [jwk]}).encode()
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path not in ("/google/jwks", "/apple/jwks"):
                    self.send_error(404)
                    return
                outer.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.close()


@pytest.fixture
def app(db_url: str, tmp_path: Path, jwks_server: JwksServer) -> Iterator[tuple[TestClient, Platform]]:
    providers = {
        "google": {"issuers": [GOOGLE_ISS], "audiences": [GOOGLE_AUD], "jwks_uri": f"{jwks_server.base}/google/jwks"},
        "apple": {"issuers": [APPLE_ISS], "audiences": [APPLE_AUD], "jwks_uri": f"{jwks_server.base}/apple/jwks"},
    }
    settings = PlatformSettings(
        FITREC_DATA_DIR=tmp_path,
        DATABASE_URL=db_url,
        oidc_providers=providers,
        jwt_secret="oidc-test-secret-" + "x" * 32,
    )
    api = FastAPI()
    install_error_handlers(api)
    api.include_router(router)
    api.include_router(users_router)
    cache = JwksCache()  # the real HTTP fetcher; a fresh cache so no keys leak between tests
    api.dependency_overrides[get_jwks_cache] = lambda: cache
    api.state.platform = open_platform(settings)
    yield TestClient(api), api.state.platform
    api.state.platform.close()


def id_token(nonce: str, *, provider: str = "google", key: Any = KEY, **overrides: Any) -> str:
    iss, aud = (GOOGLE_ISS, GOOGLE_AUD) if provider == "google" else (APPLE_ISS, APPLE_AUD)
    now = int(time.time())
    claims = {
        "iss": iss,
        "aud": aud,
        "sub": "000123.google-subject",
        "iat": now,
        "exp": now + 600,
        "nonce": nonce,
        "email": "ada@example.com",
        "email_verified": True,
        **overrides,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "key-1"})


def new_nonce(client: TestClient) -> str:
    response = client.post("/v1/auth/oidc/nonce")
    assert response.status_code == 201
    nonce: str = response.json()["nonce"]
    return nonce


def sign_in(client: TestClient, token: str, nonce: str, provider: str = "google", **body: Any) -> Any:
    return client.post(f"/v1/auth/oidc/{provider}", json={"id_token": token, "nonce": nonce, **body})


def users(platform: Platform) -> list[User]:
    with platform.sessions() as session:
        return list(session.scalars(select(User)).all())


def test_sign_in_creates_the_user_once_then_finds_it(app: tuple[TestClient, Platform], jwks_server: JwksServer) -> None:
    client, platform = app
    nonce = new_nonce(client)
    first = sign_in(client, id_token(nonce), nonce, profile={"goal": "lose_weight", "fitness_level": "beginner"})
    assert first.status_code == 200, first.text
    me = client.get("/v1/users/me", headers={"Authorization": f"Bearer {first.json()['access_token']}"}).json()
    assert me["email"] == "ada@example.com" and me["email_verified"] and me["goal"] == "lose_weight"
    with platform.sessions() as session:
        events = session.scalars(select(EventLog.event_type).where(EventLog.user_id == me["id"])).all()
        identity = session.scalar(select(OidcIdentity))
    assert sorted(events) == ["user.created", "user.email_verified"]
    assert identity is not None and (identity.provider, identity.subject) == ("google", "000123.google-subject")

    # A second sign-in (fresh nonce) finds the same account; the refresh token works.
    again_nonce = new_nonce(client)
    again = sign_in(client, id_token(again_nonce), again_nonce)
    assert again.status_code == 200
    assert client.post("/v1/auth/refresh", json={"refresh_token": again.json()["refresh_token"]}).status_code == 200
    assert len(users(platform)) == 1
    assert jwks_server.fetches == 1  # keys cached across sign-ins

    # Replays: the same nonce (even inside a fresh, validly signed token) and nonces we never issued.
    replay = sign_in(client, id_token(nonce), nonce)
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "invalid_nonce"
    made_up = "client-made-up-nonce"
    assert sign_in(client, id_token(made_up), made_up).json()["error"]["code"] == "invalid_nonce"


@pytest.mark.parametrize(
    ("case", "overrides"),
    [
        ("wrong audience", {"aud": "someone-elses-app"}),
        ("wrong issuer", {"iss": "https://accounts.evil.test"}),
        ("expired", {"exp": int(time.time()) - 600, "iat": int(time.time()) - 4000}),
        ("bad signature", {"key": ROGUE_KEY}),
        ("nonce mismatch", {"nonce": "another-nonce-value"}),
    ],
)
@pytest.mark.security
def test_bad_id_tokens_are_rejected(app: tuple[TestClient, Platform], case: str, overrides: dict[str, Any]) -> None:
    client, platform = app
    nonce = new_nonce(client)
    overrides = dict(overrides)  # parametrize shares the dict between backends
    response = sign_in(client, id_token(overrides.pop("nonce", nonce), **overrides), nonce)
    assert response.status_code == 401, case
    assert response.json()["error"]["code"] == "invalid_id_token" and response.json()["error"]["status"] == 401
    assert users(platform) == []
    # The nonce was not spent by the rejected token.
    assert sign_in(client, id_token(nonce), nonce).status_code == 200


@pytest.mark.security
def test_unknown_provider_and_malformed_token(app: tuple[TestClient, Platform]) -> None:
    client, _ = app
    nonce = new_nonce(client)
    assert sign_in(client, id_token(nonce), nonce, provider="facebook").status_code == 404
    assert sign_in(client, "x" * 40, nonce).json()["error"]["code"] == "invalid_id_token"


@pytest.mark.security
def test_links_to_an_existing_account_by_verified_email(app: tuple[TestClient, Platform]) -> None:
    client, platform = app
    # Someone signed up with Ada's address but never verified it (maybe not Ada: "pre-hijacking").
    squatter = client.post("/v1/auth/signup", json={"email": "ada@example.com", "password": "squatter-password"})
    assert squatter.status_code == 202
    [squatted] = users(platform)
    nonce = new_nonce(client)
    assert sign_in(client, id_token(nonce), nonce).status_code == 200
    [user] = users(platform)
    assert user.id == squatted.id and user.email_verified_at is not None
    # Google proved Ada owns the address; the unverified password no longer opens her account.
    login = client.post("/v1/auth/login", json={"email": "ada@example.com", "password": "squatter-password"})
    assert login.status_code == 401

    # Apple: email_verified as the string "true", SHA-256(nonce) in the token; a new identity, same user.
    nonce = new_nonce(client)
    hashed = hashlib.sha256(nonce.encode()).hexdigest()
    token = id_token(hashed, provider="apple", sub="apple-sub-42", email_verified="true")
    assert sign_in(client, token, nonce, provider="apple").status_code == 200
    assert len(users(platform)) == 1
    with platform.sessions() as session:
        assert sorted(session.scalars(select(OidcIdentity.provider)).all()) == ["apple", "google"]


@pytest.mark.security
def test_unverified_provider_email_creates_a_separate_account(app: tuple[TestClient, Platform]) -> None:
    client, platform = app
    assert client.post("/v1/auth/signup", json={"email": "ada@example.com", "password": "ada-password-1"}).status_code
    nonce = new_nonce(client)
    response = sign_in(client, id_token(nonce, email_verified=False, sub="other-sub"), nonce)
    assert response.status_code == 200
    emails = sorted((u.email or "") for u in users(platform))
    assert emails == ["", "ada@example.com"]  # never linked on an address the provider did not verify
