"""Access tokens (short-lived JWT) and opaque secrets (refresh tokens, links, API keys) stored as hashes."""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

ALGORITHM = "HS256"
ISSUER = "fitrec"
ACCESS = "access"
VERIFY_EMAIL = "verify_email"


class InvalidToken(Exception):
    """The token is malformed, forged, expired or of another purpose."""


def new_id() -> str:
    return str(uuid.uuid4())


def new_secret() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    # The secrets carry 256 bits of entropy, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    role: str
    session_id: str
    expires_at: datetime


def encode(secret: str, *, purpose: str, subject: str, ttl: timedelta, extra: dict[str, Any] | None = None) -> str:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": subject,
        "typ": purpose,
        "iat": now,
        "exp": now + ttl,
        "jti": new_id(),
        **(extra or {}),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode(secret: str, token: str, *, purpose: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "iss", "jti"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    # One secret signs several kinds of token; never accept one purpose for another.
    if claims.get("typ") != purpose:
        raise InvalidToken(f"not a {purpose} token")
    return claims


def create_access_token(secret: str, *, user_id: str, role: str, session_id: str, ttl: timedelta) -> str:
    return encode(secret, purpose=ACCESS, subject=user_id, ttl=ttl, extra={"role": role, "sid": session_id})


def decode_access_token(secret: str, token: str) -> AccessClaims:
    claims = decode(secret, token, purpose=ACCESS)
    if not isinstance(claims.get("sid"), str) or not isinstance(claims.get("role"), str):
        raise InvalidToken("access token lacks sid/role")
    return AccessClaims(
        user_id=claims["sub"],
        role=claims["role"],
        session_id=claims["sid"],
        expires_at=datetime.fromtimestamp(claims["exp"], UTC),
    )
