"""Auth routes: /v1/auth (sign-up, verification, login, tokens, OIDC), /v1/users/me, /v1/admin (API keys, roles)."""

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Query, Request, Response

from platform_api.auth import api_keys, service
from platform_api.auth.oidc import JwksCache, get_jwks_cache, issue_nonce, oidc_sign_in
from platform_api.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    ApiKeysPublic,
    EmailVerifiedPublic,
    LoginIn,
    OidcLoginIn,
    OidcNoncePublic,
    RefreshIn,
    ResendVerificationIn,
    RoleUpdate,
    SignUpAccepted,
    TokenPairPublic,
    UserCreate,
    UserPublic,
    UserUpdate,
    VerifyEmailIn,
)
from platform_api.auth.tables import ApiKey, User
from platform_api.background import relay_emails
from platform_api.deps import AdminUser, CurrentUser, EmailDep, PlatformDep, SessionDep
from platform_api.email.base import try_send
from platform_api.errors import ERROR_SCHEMA

router = APIRouter(prefix="/v1/auth", tags=["auth"])
users_router = APIRouter(prefix="/v1/users", tags=["users"])
admin_router = APIRouter(prefix="/v1/admin", tags=["admin"])

JwksDep = Annotated[JwksCache, Depends(get_jwks_cache)]
errors: dict[int | str, dict[str, Any]] = {code: ERROR_SCHEMA for code in (400, 401, 403, 404, 409, 422, 429)}
# Sign-up and resend answer alike for every address: only bad input and the rate limit are errors.
accepted_errors: dict[int | str, dict[str, Any]] = {code: errors[code] for code in (422, 429)}
RowId = Annotated[str, Path(max_length=36)]


def user_public(user: User) -> UserPublic:
    return UserPublic(
        id=user.id,
        email=user.email,
        email_verified=user.email_verified_at is not None,
        role=user.role,  # type: ignore[arg-type]
        display_name=user.display_name,
        goal=user.goal,
        fitness_level=user.fitness_level,
        equipment=list(user.equipment),
        session_minutes=user.session_minutes,
        region=user.region,
        created_at=user.created_at,
    )


def tokens_public(pair: service.TokenPair) -> TokenPairPublic:
    return TokenPairPublic(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
        refresh_expires_in=pair.refresh_expires_in,
    )


def api_key_public(key: ApiKey) -> ApiKeyPublic:
    return ApiKeyPublic(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        scopes=list(key.scopes),
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


def client_address(request: Request) -> str | None:
    # The peer, or what a trusted proxy says the client is (settings.trusted_proxies, platform_api.auth.proxies).
    return request.client.host[:64] if request.client else None


def accepted(email: str) -> SignUpAccepted:
    return SignUpAccepted(email=email, message=f"check your inbox at {email} to continue")


# --- /v1/auth -----------------------------------------------------------------------------------


@router.post("/signup", status_code=202, response_model=SignUpAccepted, responses=accepted_errors)
def sign_up(
    body: UserCreate,
    request: Request,
    session: SessionDep,
    platform: PlatformDep,
    email: EmailDep,
    background: BackgroundTasks,
) -> SignUpAccepted:
    """Sign up with email and password: a verification link is emailed (the same answer for every address)."""
    token = service.sign_up(session, settings=platform.settings, data=body, client_address=client_address(request))
    # Mail after the response on both paths, so neither answers slower than the other.
    if token is None:  # the address has an account: its owner was sent a notice through the outbox
        background.add_task(relay_emails, platform, email)
    else:
        background.add_task(try_send, email, service.verification_email(platform.settings, to=body.email, token=token))
    return accepted(body.email)


@router.get("/verify-email", response_model=EmailVerifiedPublic, responses=errors)
def verify_email_link(
    token: Annotated[str, Query(min_length=20, max_length=2000)], session: SessionDep, platform: PlatformDep
) -> EmailVerifiedPublic:
    """Verify an email address from the link in the verification email (single use)."""
    user = service.verify_email(session, settings=platform.settings, token=token)
    return EmailVerifiedPublic(user_id=user.id, email=user.email or "")


@router.post("/verify-email", response_model=EmailVerifiedPublic, responses=errors)
def verify_email(body: VerifyEmailIn, session: SessionDep, platform: PlatformDep) -> EmailVerifiedPublic:
    """Verify an email address with the token of the verification link (single use)."""
    user = service.verify_email(session, settings=platform.settings, token=body.token)
    return EmailVerifiedPublic(user_id=user.id, email=user.email or "")


@router.post("/verify-email/resend", status_code=202, response_model=SignUpAccepted, responses=accepted_errors)
def resend_verification(
    body: ResendVerificationIn,
    request: Request,
    session: SessionDep,
    platform: PlatformDep,
    email: EmailDep,
    background: BackgroundTasks,
) -> SignUpAccepted:
    """Email a new verification link if the account exists and is unverified (always 202: no account probing)."""
    issued = service.resend_verification(
        session, settings=platform.settings, email=body.email, client_address=client_address(request)
    )
    if issued is not None:
        user, token = issued
        background.add_task(
            try_send, email, service.verification_email(platform.settings, to=user.email or "", token=token)
        )
    return accepted(body.email.strip().lower())


@router.post("/login", response_model=TokenPairPublic, responses=errors)
def login(body: LoginIn, request: Request, session: SessionDep, platform: PlatformDep) -> TokenPairPublic:
    """Sign in with email and password: a short-lived access token and a single-use refresh token."""
    pair = service.login(
        session,
        settings=platform.settings,
        email=body.email,
        password=body.password,
        client_address=client_address(request),
    )
    return tokens_public(pair)


@router.post("/refresh", response_model=TokenPairPublic, responses=errors)
def refresh(body: RefreshIn, session: SessionDep, platform: PlatformDep) -> TokenPairPublic:
    """Trade a refresh token for a new pair; presenting a used refresh token revokes the session."""
    return tokens_public(service.refresh(session, settings=platform.settings, refresh_token=body.refresh_token))


@router.post("/logout", status_code=204, responses=errors)
def logout(body: RefreshIn, session: SessionDep) -> Response:
    """End the session of this refresh token: its refresh and access tokens stop working."""
    service.logout(session, refresh_token=body.refresh_token)
    return Response(status_code=204)


@router.post("/logout-all", status_code=204, responses=errors)
def logout_all(user: CurrentUser, session: SessionDep) -> Response:
    """End every session of the signed-in user, on every device."""
    service.logout_everywhere(session, user_id=user.id)
    return Response(status_code=204)


@router.post("/oidc/nonce", status_code=201, response_model=OidcNoncePublic, responses=errors)
def oidc_nonce(session: SessionDep) -> OidcNoncePublic:
    """A single-use nonce to put in the Google/Apple sign-in request (valid 10 minutes)."""
    nonce, expires_at = issue_nonce(session)
    return OidcNoncePublic(nonce=nonce, expires_at=expires_at)


@router.post("/oidc/{provider}", response_model=TokenPairPublic, responses=errors)
def oidc_login(
    provider: Annotated[str, Path(examples=["google", "apple"], max_length=32)],
    body: OidcLoginIn,
    request: Request,
    session: SessionDep,
    platform: PlatformDep,
    jwks: JwksDep,
) -> TokenPairPublic:
    """Sign in with a provider's OpenID Connect id_token; links to or creates the account."""
    pair = oidc_sign_in(
        session,
        settings=platform.settings,
        jwks=jwks,
        provider=provider,
        id_token=body.id_token,
        nonce=body.nonce,
        profile=body.profile,
        client_address=client_address(request),
    )
    return tokens_public(pair)


# --- /v1/users/me -------------------------------------------------------------------------------


@users_router.get("/me", response_model=UserPublic, responses=errors)
def get_me(user: CurrentUser) -> UserPublic:
    """The signed-in user's account and training profile."""
    return user_public(user)


@users_router.patch("/me", response_model=UserPublic, responses=errors)
def update_me(body: UserUpdate, user: CurrentUser, session: SessionDep) -> UserPublic:
    """Change the signed-in user's display name or training profile."""
    return user_public(service.update_profile(session, user=user, data=body))


# --- /v1/admin ----------------------------------------------------------------------------------


@admin_router.post("/api-keys", status_code=201, response_model=ApiKeyCreated, responses=errors)
def create_api_key(body: ApiKeyCreate, admin: AdminUser, session: SessionDep) -> ApiKeyCreated:
    """Create a scoped service API key; the secret is in this response only."""
    key, raw = api_keys.create_api_key(session, name=body.name, scopes=list(body.scopes), created_by=admin.id)
    return ApiKeyCreated(**api_key_public(key).model_dump(), key=raw)


@admin_router.get("/api-keys", response_model=ApiKeysPublic, responses=errors)
def list_api_keys(_: AdminUser, session: SessionDep) -> ApiKeysPublic:
    """Every service API key (without secrets), newest first."""
    keys = [api_key_public(k) for k in api_keys.list_api_keys(session)]
    return ApiKeysPublic(data=keys, count=len(keys))


@admin_router.delete("/api-keys/{key_id}", response_model=ApiKeyPublic, responses=errors)
def revoke_api_key(key_id: RowId, _: AdminUser, session: SessionDep) -> ApiKeyPublic:
    """Revoke a service API key at once."""
    return api_key_public(api_keys.revoke_api_key(session, key_id=key_id))


@admin_router.put("/users/{user_id}/role", response_model=UserPublic, responses=errors)
def set_role(user_id: RowId, body: RoleUpdate, _: AdminUser, session: SessionDep) -> UserPublic:
    """Make a user a trainer or an admin (or a plain user again); the last admin stays one (409)."""
    return user_public(service.set_role(session, user_id=user_id, role=body.role))
