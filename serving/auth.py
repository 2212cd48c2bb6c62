"""Who may read a user's recommendations, without a database round trip on the hot path.

Service keys are looked up once and remembered for a short time (a revoked key stops
working within `KEY_TTL_S`); users' access tokens go through the platform's full check.
"""

import threading
import time
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from platform_api.auth.authenticate import authenticate
from platform_api.auth.principal import Principal
from platform_api.errors import ApiError

KEY_TTL_S = 30.0
READ_SCOPE = "recommendations:read"

_bearer = HTTPBearer(auto_error=False, description="A user's access token (their own recommendations only)")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="Service API key with recommendations:read")


class KeyCache:
    def __init__(self, ttl_s: float = KEY_TTL_S) -> None:
        self._ttl = ttl_s
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Principal | None:
        hit = self._entries.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: str, principal: Principal) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + self._ttl, principal)


def get_reader(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key)],
) -> Principal:
    keys: KeyCache = request.app.state.serving.keys
    if api_key and not bearer:
        cached = keys.get(api_key)
        if cached is not None:
            return cached
    platform = request.app.state.platform
    with platform.sessions() as session:
        principal = authenticate(
            session,
            secret=platform.settings.jwt_secret.get_secret_value(),
            bearer=bearer.credentials if bearer else None,
            api_key=api_key,
        )
    if principal.kind == "service" and api_key:
        keys.put(api_key, principal)
    return principal


def ensure_can_read(principal: Principal, user_id: str) -> None:
    """A service with the read scope, the user themself, or an admin; 404 for anyone else."""
    if principal.has_scope(READ_SCOPE) or principal.user_id == user_id or principal.is_admin:
        return
    if principal.kind == "service":
        raise ApiError(403, f"API key scope {READ_SCOPE!r} required", code="insufficient_scope")
    raise ApiError(404, "user not found")


ReaderDep = Annotated[Principal, Depends(get_reader)]
