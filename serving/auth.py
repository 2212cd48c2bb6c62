"""Who may read a user's recommendations, without a database round trip on the hot path.

Service keys are looked up once and remembered for a short time (a revoked key stops
working within `KEY_TTL_S`); users' access tokens go through the platform's full check.
While the database is unreachable a key seen within `STALE_S` keeps its last verdict, so
the app backend's recommendations survive an outage (nobody can revoke a key meanwhile).
"""

import threading
import time

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from platform_api.auth.authenticate import authenticate
from platform_api.auth.principal import Principal
from platform_api.errors import ApiError, is_database_unavailable
from platform_api.runtime import Platform

KEY_TTL_S = 30.0
STALE_S = 3600.0
READ_SCOPE = "recommendations:read"
FEEDBACK_SCOPE = "feedback:write"


class KeyCache:
    def __init__(self, ttl_s: float = KEY_TTL_S, stale_s: float = STALE_S) -> None:
        self._ttl = ttl_s
        self._stale = stale_s
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, key: str, *, stale: bool = False) -> Principal | None:
        """The remembered verdict while fresh; with `stale`, up to STALE_S past that."""
        hit = self._entries.get(key)
        if hit is None or hit[0] + (self._stale if stale else 0.0) < time.monotonic():
            return None
        return hit[1]

    def put(self, key: str, principal: Principal) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + self._ttl, principal)


async def reader(request: Request) -> Principal:
    """The caller, from `X-API-Key` (cached for KEY_TTL_S) or `Authorization: Bearer <access token>`."""
    api_key = request.headers.get("x-api-key") or None
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    bearer = token.strip() if scheme.lower() == "bearer" and token.strip() else None
    keys: KeyCache = request.app.state.serving.keys
    if api_key and not bearer:
        cached = keys.get(api_key)
        if cached is not None:
            return cached
    try:
        principal = await run_in_threadpool(_authenticate, request.app.state.platform, bearer, api_key)
    except Exception as exc:
        remembered = keys.get(api_key, stale=True) if api_key and not bearer else None
        if remembered is None or not is_database_unavailable(exc):
            raise
        return remembered
    if principal.kind == "service" and api_key:
        keys.put(api_key, principal)
    return principal


def _authenticate(platform: Platform, bearer: str | None, api_key: str | None) -> Principal:
    with platform.sessions() as session:
        return authenticate(
            session, secret=platform.settings.jwt_secret.get_secret_value(), bearer=bearer, api_key=api_key
        )


def ensure_can_read(principal: Principal, user_id: str) -> None:
    """A service with the read scope, the user themself, or an admin; 404 for anyone else."""
    if principal.has_scope(READ_SCOPE) or principal.user_id == user_id or principal.is_admin:
        return
    if principal.kind == "service":
        raise ApiError(403, f"API key scope {READ_SCOPE!r} required", code="insufficient_scope")
    raise ApiError(404, "user not found")


def ensure_can_send_feedback(principal: Principal, user_id: str) -> None:
    """A service with the feedback scope or the user themself (feedback becomes their ranking labels); 404 else."""
    if principal.has_scope(FEEDBACK_SCOPE) or principal.user_id == user_id:
        return
    if principal.kind == "service":
        raise ApiError(403, f"API key scope {FEEDBACK_SCOPE!r} required", code="insufficient_scope")
    raise ApiError(404, "user not found")
