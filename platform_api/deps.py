"""FastAPI dependency aliases shared by every platform router."""

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from platform_api.auth.authenticate import authenticate
from platform_api.auth.principal import Principal
from platform_api.auth.tables import User
from platform_api.email.base import EmailSender
from platform_api.email.factory import make_email_sender
from platform_api.errors import ERROR_SCHEMA, ApiError
from platform_api.runtime import Platform


def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def get_session(request: Request) -> Iterator[Session]:
    session = get_platform(request).sessions()
    try:
        yield session
    finally:
        session.close()


PlatformDep = Annotated[Platform, Depends(get_platform)]
SessionDep = Annotated[Session, Depends(get_session)]


# --- auth: who is calling (logic in platform_api.auth.authenticate) ---

_bearer_scheme = HTTPBearer(auto_error=False, description="Access token from /v1/auth/login")
_api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="Service API key")


def get_principal(
    session: SessionDep,
    platform: PlatformDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer_scheme)],
    api_key: Annotated[str | None, Security(_api_key_scheme)],
) -> Principal:
    return authenticate(
        session,
        secret=platform.settings.jwt_secret.get_secret_value(),
        bearer=bearer.credentials if bearer else None,
        api_key=api_key,
    )


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def get_current_user(principal: CurrentPrincipal) -> User:
    if principal.user is None:
        raise ApiError(403, "this route needs a user's sign-in, not a service key")
    return principal.user


CurrentUser = Annotated[User, Depends(get_current_user)]


def document_user_only(router: APIRouter) -> None:
    """List get_current_user's 403 (a service key on a user's route) on every route that depends on it."""

    def needs_user(dependant: Dependant) -> bool:
        return any(d.call is get_current_user or needs_user(d) for d in dependant.dependencies)

    for route in router.routes:
        if isinstance(route, APIRoute) and needs_user(route.dependant):
            route.responses.setdefault(403, ERROR_SCHEMA)


def get_verified_user(user: CurrentUser) -> User:
    if user.email_verified_at is None:
        raise ApiError(403, "verify your email address first", code="email_not_verified")
    return user


def get_trainer_user(user: CurrentUser) -> User:
    if user.role not in ("trainer", "admin"):
        raise ApiError(403, "trainers only")
    return user


def get_admin_user(user: CurrentUser) -> User:
    if user.role != "admin":
        raise ApiError(403, "admins only")
    return user


def get_analyst_user(user: CurrentUser) -> User:
    if user.role not in ("analyst", "admin"):
        raise ApiError(403, "analysts and admins only")
    return user


def get_service_key(principal: CurrentPrincipal) -> Principal:
    if principal.kind != "service":
        raise ApiError(403, "this route needs a service API key")
    return principal


VerifiedUser = Annotated[User, Depends(get_verified_user)]
TrainerUser = Annotated[User, Depends(get_trainer_user)]
AdminUser = Annotated[User, Depends(get_admin_user)]
AnalystUser = Annotated[User, Depends(get_analyst_user)]
ServiceKey = Annotated[Principal, Depends(get_service_key)]


def require_scope(scope: str) -> Callable[[Principal], Principal]:
    """A dependency admitting a service key holding `scope`, e.g. `Depends(require_scope("events:write"))`."""

    def _check(principal: CurrentPrincipal) -> Principal:
        if not principal.has_scope(scope):
            raise ApiError(403, f"API key scope {scope!r} required", code="insufficient_scope")
        return principal

    return _check


def get_email_sender(platform: PlatformDep) -> EmailSender:
    """The configured sender (cheap to build: it holds a URL or the session factory)."""
    settings = platform.settings
    return make_email_sender(
        settings.email_url.get_secret_value(), sender=settings.email_from, sessions=platform.sessions
    )


EmailDep = Annotated[EmailSender, Depends(get_email_sender)]
