"""Access/verification tokens, password hashing, request schemas, ownership filters."""

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from argon2 import PasswordHasher
from pydantic import ValidationError
from sqlalchemy import select

from platform_api.auth.ownership import can_access, owned_by
from platform_api.auth.passwords import hash_password, needs_rehash, verify_password
from platform_api.auth.principal import Principal
from platform_api.auth.schemas import UserCreate
from platform_api.auth.tables import ApiKey, AuthSession, User
from platform_api.auth.tokens import (
    VERIFY_EMAIL,
    InvalidToken,
    create_access_token,
    decode,
    decode_access_token,
    encode,
)

SECRET = "unit-test-secret-of-enough-length-32b"


def test_access_token_round_trip() -> None:
    token = create_access_token(SECRET, user_id="u1", role="trainer", session_id="s1", ttl=timedelta(minutes=5))
    claims = decode_access_token(SECRET, token)
    assert (claims.user_id, claims.role, claims.session_id) == ("u1", "trainer", "s1")
    assert timedelta(minutes=4) < claims.expires_at - datetime.now(UTC) <= timedelta(minutes=5)


@pytest.mark.security
@pytest.mark.parametrize("case", ["expired", "other_secret", "tampered", "alg_none", "other_purpose"])
def test_access_token_rejections(case: str) -> None:
    ttl = timedelta(seconds=-1) if case == "expired" else timedelta(minutes=5)
    secret = "another-secret-of-enough-length-32b!" if case == "other_secret" else SECRET
    if case == "other_purpose":
        token = encode(SECRET, purpose=VERIFY_EMAIL, subject="u1", ttl=ttl, extra={"role": "admin", "sid": "s"})
    else:
        token = create_access_token(secret, user_id="u1", role="user", session_id="s1", ttl=ttl)
    if case == "tampered":  # promote oneself to admin, keep the original signature
        header, payload, signature = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        forged = base64.urlsafe_b64encode(json.dumps({**claims, "role": "admin"}).encode()).rstrip(b"=").decode()
        token = f"{header}.{forged}.{signature}"
    if case == "alg_none":
        good = jwt.decode(token, SECRET, algorithms=["HS256"], issuer="fitrec")
        token = jwt.encode({**good, "role": "admin"}, None, algorithm="none")
    with pytest.raises(InvalidToken):
        decode_access_token(SECRET, token)


@pytest.mark.security
def test_verification_token_is_not_an_access_token_and_back() -> None:
    access = create_access_token(SECRET, user_id="u1", role="user", session_id="s1", ttl=timedelta(minutes=5))
    with pytest.raises(InvalidToken, match="verify_email"):
        decode(SECRET, access, purpose=VERIFY_EMAIL)


def test_passwords_hash_verify_and_rehash() -> None:
    hashed = hash_password("correct horse battery")
    assert hashed.startswith("$argon2id$")
    assert hashed != hash_password("correct horse battery")  # salted
    assert verify_password(hashed, "correct horse battery")
    assert not verify_password(hashed, "correct horse batterY")
    assert not verify_password(None, "correct horse battery")  # OIDC-only account
    assert not verify_password("not-a-hash", "x")
    assert not needs_rehash(hashed)
    assert needs_rehash(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("x"))


def test_sign_up_schema_normalises_and_validates() -> None:
    user = UserCreate(email="Ada@Example.COM", password="correct horse battery")
    assert user.email == "ada@example.com"
    assert (user.goal, user.fitness_level, user.region) == ("general_fitness", "beginner", "US")
    for bad in (
        {"email": "not-an-email", "password": "correct horse battery"},
        {"email": "ada@example.com", "password": "short"},
        {"email": "ada@example.com", "password": "ada@example.com"},
        {"email": "ada@example.com", "password": "          "},
        {"email": "ada@example.com", "password": "correct horse battery", "region": "usa"},
        {"email": "ada@example.com", "password": "correct horse battery", "goal": "be_famous"},
    ):
        with pytest.raises(ValidationError):
            UserCreate.model_validate(bad)


def _user(uid: str, role: str = "user") -> User:
    return User(id=uid, role=role)


@pytest.mark.security
def test_ownership_rule() -> None:
    row = AuthSession(id="s1", user_id="alice")
    assert can_access(row, _user("alice"))
    assert not can_access(row, _user("bob"))
    assert can_access(row, _user("root", "admin"))
    assert can_access(row, Principal.of_user(_user("alice")))
    assert not can_access(row, Principal.of_api_key(ApiKey(id="k", scopes=["users:read"])))


@pytest.mark.security
def test_owned_by_filters_listings() -> None:
    stmt = select(AuthSession)
    assert "user_id = " in str(owned_by(stmt, AuthSession, _user("bob")))
    assert "WHERE" not in str(owned_by(stmt, AuthSession, _user("root", "admin")))
    # A service key owns nothing: never "user_id IS NULL", which would select ownerless rows.
    service_sql = str(owned_by(stmt, AuthSession, Principal.of_api_key(ApiKey(id="k", scopes=[]))))
    assert "IS NULL" not in service_sql and ("false" in service_sql.lower() or "0 = 1" in service_sql)
