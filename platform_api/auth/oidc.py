"""Sign in with Google or Apple: verify the provider's OpenID Connect id_token, then link or create the user.

Verification: the signature against the provider's published JWKS (asymmetric algorithms only, the key
chosen by `kid`), issuer, audience (our client ids), expiry and issued-at, and a nonce the platform
issued itself (single use, short-lived), so a captured id_token cannot be replayed.
"""

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import httpx
import jwt
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from platform_api.auth.ratelimit import LoginRateLimiter
from platform_api.auth.schemas import Profile
from platform_api.auth.service import TokenPair, affected, emit, new_user, revoke_user_sessions, start_session
from platform_api.auth.tables import OidcIdentity, OidcNonce, User
from platform_api.auth.tokens import hash_secret, new_id, new_secret
from platform_api.config import OidcProvider, PlatformSettings
from platform_api.errors import ApiError

# Providers sign with RSA (Google, Apple) or EC keys; never accept HMAC or "none" here.
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384")
NONCE_TTL = timedelta(minutes=10)
LEEWAY_S = 60  # clock skew between the provider and us


class OidcError(Exception):
    """The id_token failed verification."""


def fetch_jwks_http(uri: str) -> dict[str, Any]:
    response = httpx.get(uri, timeout=5.0, follow_redirects=False)
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


@dataclass
class JwksCache:
    """Providers' signing keys, cached per JWKS URI; refetched when stale or on an unknown `kid`
    (key rotation), but at most once per `min_refetch_s` so forged kids cannot hammer the provider."""

    fetch: Callable[[str], dict[str, Any]] = fetch_jwks_http
    ttl_s: float = 3600.0
    min_refetch_s: float = 30.0
    _keys: dict[str, tuple[float, dict[str, jwt.PyJWK]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _load(self, uri: str) -> dict[str, jwt.PyJWK]:
        try:
            data = self.fetch(uri)
        except (httpx.HTTPError, ValueError) as exc:
            raise ApiError(503, "identity provider keys unavailable; retry later") from exc
        keys: dict[str, jwt.PyJWK] = {}
        for jwk in data.get("keys", []):
            if jwk.get("use", "sig") != "sig" or "kid" not in jwk:
                continue
            try:
                keys[jwk["kid"]] = jwt.PyJWK(jwk)
            except jwt.PyJWTError:
                continue  # a key type we do not support; others may still verify
        self._keys[uri] = (time.monotonic(), keys)
        return keys

    def key(self, uri: str, kid: str) -> jwt.PyJWK:
        with self._lock:
            fetched_at, keys = self._keys.get(uri, (None, {}))
            age = None if fetched_at is None else time.monotonic() - fetched_at
            if age is None or age > self.ttl_s or (kid not in keys and age > self.min_refetch_s):
                keys = self._load(uri)
        if kid not in keys:
            raise OidcError("signing key not found in the provider's JWKS")
        return keys[kid]


@lru_cache
def get_jwks_cache() -> JwksCache:
    """The process-wide cache (a FastAPI dependency; override it to inject a fetcher)."""
    return JwksCache()


def _nonce_matches(claimed: Any, nonce: str) -> bool:
    if not isinstance(claimed, str):
        return False
    # Apple's iOS SDK sends SHA-256(nonce) to Apple, so the token carries the hash; accept either form.
    hashed = hashlib.sha256(nonce.encode()).hexdigest()
    return hmac.compare_digest(claimed, nonce) or hmac.compare_digest(claimed, hashed)


def verify_id_token(token: str, *, provider: OidcProvider, jwks: JwksCache, nonce: str) -> dict[str, Any]:
    """The token's claims if it is genuine and meant for us; OidcError otherwise."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise OidcError("malformed id_token") from exc
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ASYMMETRIC or not isinstance(kid, str):
        raise OidcError(f"unsupported id_token algorithm {alg!r}")
    key = jwks.key(provider.jwks_uri, kid)
    if key.algorithm_name != alg:
        raise OidcError("id_token algorithm does not match its key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[alg],
            audience=provider.audiences,
            issuer=provider.issuers,
            leeway=LEEWAY_S,
            options={"require": ["iss", "aud", "exp", "iat", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise OidcError(f"id_token rejected: {exc}") from exc
    if not _nonce_matches(claims.get("nonce"), nonce):
        raise OidcError("id_token nonce does not match")
    return claims


def issue_nonce(session: Session) -> tuple[str, datetime]:
    nonce, now = new_secret(), datetime.now(UTC)
    session.add(OidcNonce(nonce_hash=hash_secret(nonce), created_at=now, expires_at=now + NONCE_TTL))
    session.execute(delete(OidcNonce).where(OidcNonce.expires_at < now - NONCE_TTL))  # keep the table small
    session.commit()
    return nonce, now + NONCE_TTL


def consume_nonce(session: Session, *, nonce: str) -> bool:
    """True once per issued, unexpired nonce (a guarded update, safe under concurrency)."""
    now = datetime.now(UTC)
    return (
        affected(
            session.execute(
                update(OidcNonce)
                .where(
                    OidcNonce.nonce_hash == hash_secret(nonce), OidcNonce.used_at.is_(None), OidcNonce.expires_at > now
                )
                .values(used_at=now)
            )
        )
        == 1
    )


def _verified_email(claims: dict[str, Any]) -> str | None:
    email = claims.get("email")
    # Apple sends email_verified as the string "true".
    verified = claims.get("email_verified") in (True, "true")
    return email.strip().lower() if isinstance(email, str) and verified else None


def _link_or_create(session: Session, *, provider: str, claims: dict[str, Any], profile: Profile | None) -> User:
    subject = str(claims["sub"])
    identity = session.scalar(
        select(OidcIdentity).where(OidcIdentity.provider == provider, OidcIdentity.subject == subject)
    )
    if identity is not None:
        user = session.get(User, identity.user_id)
        assert user is not None  # foreign key
        return user
    email = _verified_email(claims)
    user = session.scalar(select(User).where(User.email == email)) if email else None
    now = datetime.now(UTC)
    if user is not None:
        if user.email_verified_at is None:
            # Someone may have signed up with this address without owning it ("pre-hijacking"):
            # the provider proves ownership now, so nothing of theirs may keep working: not the
            # password, no session (authenticate() and refresh() check the session on every use), and
            # no address exempt from the account-wide sign-in limit.
            user.password_hash = None
            revoke_user_sessions(session, user_id=user.id, reason="identity_linked")
            LoginRateLimiter.forget_known_addresses(session, email=user.email or "")
            user.email_verified_at = now
            user.updated_at = now
            emit(session, event_type="user.email_verified", user_id=user.id, at=now)
    else:
        user = new_user(
            session, email=email, password_hash=None, profile=profile or Profile.model_validate({}), verified=True
        )
    session.add(
        OidcIdentity(id=new_id(), provider=provider, subject=subject, user_id=user.id, email=email, created_at=now)
    )
    session.flush()
    return user


def oidc_sign_in(
    session: Session,
    *,
    settings: PlatformSettings,
    jwks: JwksCache,
    provider: str,
    id_token: str,
    nonce: str,
    profile: Profile | None,
    client_address: str | None,
) -> TokenPair:
    config = settings.oidc_providers.get(provider)
    if config is None:
        raise ApiError(404, f"unknown sign-in provider {provider!r}")
    try:
        claims = verify_id_token(id_token, provider=config, jwks=jwks, nonce=nonce)
    except OidcError as exc:
        raise ApiError(401, str(exc), code="invalid_id_token") from exc
    if not consume_nonce(session, nonce=nonce):
        session.rollback()
        raise ApiError(401, "unknown, used or expired nonce; request a new one", code="invalid_nonce")
    session.commit()  # the nonce stays spent even if what follows fails
    try:
        user = _link_or_create(session, provider=provider, claims=claims, profile=profile)
    except IntegrityError:  # a concurrent first sign-in of the same account created it: use theirs
        session.rollback()
        user = _link_or_create(session, provider=provider, claims=claims, profile=profile)
    if not user.is_active:
        raise ApiError(401, "this account is disabled", code="account_disabled")
    pair = start_session(
        session, settings=settings, user=user, method=f"oidc:{provider}", client_address=client_address
    )
    session.commit()
    return pair
