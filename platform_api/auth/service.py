"""Accounts and sessions: sign-up, email verification, login, refresh rotation, logout, roles.

Services take an injected session and commit at their boundary; every write commits together with
its event row (transactional outbox). Emails are sent by the caller *after* the commit.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Result, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from platform_api.auth.passwords import hash_password, needs_rehash, verify_password
from platform_api.auth.ratelimit import LoginRateLimiter, RequestLimiter
from platform_api.auth.schemas import Profile, UserCreate, UserUpdate
from platform_api.auth.tables import ROLES, AuthSession, EmailVerification, RefreshToken, User
from platform_api.auth.tokens import (
    VERIFY_EMAIL,
    InvalidToken,
    create_access_token,
    decode,
    encode,
    hash_secret,
    new_id,
    new_secret,
)
from platform_api.config import PlatformSettings
from platform_api.email.base import OutgoingEmail
from platform_api.errors import ApiError
from platform_api.events.ingest import store_events
from platform_api.events.schemas import EventIn
from platform_api.outbox import enqueue_email
from platform_api.transactions import retry_write

# Don't mail the same address more than once a minute when asked to resend the link.
RESEND_INTERVAL = timedelta(seconds=60)


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    session_id: str


def affected(result: Result[Any]) -> int:
    """Rows matched by an UPDATE/DELETE (the typed accessor for CursorResult.rowcount)."""
    return cast(CursorResult[Any], result).rowcount


def _now() -> datetime:
    return datetime.now(UTC)


def _secret(settings: PlatformSettings) -> str:
    return settings.jwt_secret.get_secret_value()


def emit(
    session: Session,
    *,
    event_type: str,
    user_id: str,
    properties: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Add an event row to the caller's transaction."""
    event = EventIn(
        event_id=uuid.uuid4(),
        event_type=event_type,
        user_id=user_id,
        item_id=None,
        occurred_at=at or _now(),
        properties=properties or {},
    )
    store_events(session, events=[event])


# --- accounts ---------------------------------------------------------------------------------


def new_user(
    session: Session,
    *,
    email: str | None,
    password_hash: str | None,
    profile: Profile,
    display_name: str | None = None,
    verified: bool = False,
    role: str = "user",
) -> User:
    """Add a user and its `user.created` (and `user.email_verified`) events; the caller commits."""
    now = _now()
    user = User(
        id=new_id(),
        email=email,
        password_hash=password_hash,
        role=role,
        display_name=display_name,
        email_verified_at=now if verified and email else None,
        is_active=True,
        created_at=now,
        updated_at=now,
        **profile.model_dump(),
    )
    session.add(user)
    session.flush()  # the unique email surfaces here, before any event is written
    emit(session, event_type="user.created", user_id=user.id, properties=profile.model_dump(), at=now)
    if user.email_verified_at:
        emit(session, event_type="user.email_verified", user_id=user.id, at=now)
    return user


def request_limiter(settings: PlatformSettings, action: str) -> RequestLimiter:
    return RequestLimiter(
        action=action,
        window=timedelta(seconds=settings.signup_window_s),
        max_per_address=settings.signup_max_per_address,
        max_per_email=settings.signup_max_per_email,
    )


def sign_up(
    session: Session, *, settings: PlatformSettings, data: UserCreate, client_address: str | None
) -> str | None:
    """Create an unverified account and return the raw verification token to mail (after commit).

    An address that has an account keeps it unchanged; its owner is sent a notice through the outbox and
    None is returned. The caller answers both alike, so sign-up cannot tell who has an account.
    """
    request_limiter(settings, "signup").hit(session, email=data.email, address=client_address)
    password_hash = hash_password(data.password)  # on both paths, so they take the same time
    existing = session.scalar(select(User).where(User.email == data.email))
    if existing is None:
        profile = Profile.model_validate(data.model_dump(include=set(Profile.model_fields)))
        try:
            user = new_user(
                session, email=data.email, password_hash=password_hash, profile=profile, display_name=data.display_name
            )
            token = issue_verification(session, settings=settings, user=user)
            session.commit()
            return token
        except IntegrityError:  # a concurrent sign-up with the same email won the race
            session.rollback()
            existing = session.scalar(select(User).where(User.email == data.email))
            if existing is None:
                raise
    notify_sign_up_attempt(session, user=existing)
    session.commit()
    return None


def notify_sign_up_attempt(session: Session, *, user: User) -> None:
    """Queue a notice to the owner of an address someone tried to sign up with (at most one an hour)."""
    confirm = "" if user.email_verified_at else " If you have not confirmed your address yet, ask for a new link."
    enqueue_email(
        session,
        user_id=user.id,
        subject="Someone tried to sign up to fitrec with your email",
        body="Someone, maybe you, tried to create a fitrec account with this email address. It has an account "
        f"already, and nothing was changed.\n\nIf it was you, sign in instead.{confirm} If it was not you, "
        "you can ignore this message.\n",
        dedupe_key=f"signup-notice:{user.id}:{_now():%Y%m%d%H}",
    )


def issue_verification(session: Session, *, settings: PlatformSettings, user: User) -> str:
    """A signed, expiring, single-use verification token; only its hash is stored."""
    if not user.email:
        raise ApiError(400, "this account has no email address")
    ttl = timedelta(hours=settings.email_verification_ttl_h)
    row_id = new_id()
    token = encode(_secret(settings), purpose=VERIFY_EMAIL, subject=user.id, ttl=ttl, extra={"vid": row_id})
    now = _now()
    session.add(
        EmailVerification(
            id=row_id,
            user_id=user.id,
            email=user.email,
            token_hash=hash_secret(token),
            created_at=now,
            expires_at=now + ttl,
        )
    )
    return token


def verification_email(settings: PlatformSettings, *, to: str, token: str) -> OutgoingEmail:
    link = f"{settings.public_base_url.rstrip('/')}/v1/auth/verify-email?token={token}"
    return OutgoingEmail(
        to=to,
        subject="Confirm your email for fitrec",
        body=f"Welcome to fitrec!\n\nConfirm your email address by opening this link:\n\n{link}\n\n"
        f"The link works once and expires in {settings.email_verification_ttl_h} hours. "
        "If you did not sign up, ignore this message.\n",
    )


def resend_verification(
    session: Session, *, settings: PlatformSettings, email: str, client_address: str | None
) -> tuple[User, str] | None:
    """A fresh link for an unverified account; None (silently) for unknown, verified or too-recent requests.
    Rate limited per address and per email (429 whether or not the account exists)."""
    request_limiter(settings, "resend").hit(session, email=email, address=client_address)
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or user.email_verified_at is not None or not user.is_active:
        return None
    last = session.scalar(
        select(EmailVerification.created_at)
        .where(EmailVerification.user_id == user.id)
        .order_by(EmailVerification.created_at.desc())
        .limit(1)
    )
    if last is not None and last > _now() - RESEND_INTERVAL:
        return None
    token = issue_verification(session, settings=settings, user=user)
    session.commit()
    return user, token


def verify_email(session: Session, *, settings: PlatformSettings, token: str) -> User:
    """Consume a verification link: mark the email verified and emit `user.email_verified`, once."""
    try:
        claims = decode(_secret(settings), token, purpose=VERIFY_EMAIL)
    except InvalidToken as exc:
        raise ApiError(400, "invalid or expired verification link", code="invalid_link") from exc
    row = session.scalar(select(EmailVerification).where(EmailVerification.token_hash == hash_secret(token)))
    if row is None or row.user_id != claims["sub"] or row.id != claims.get("vid"):
        raise ApiError(400, "invalid or expired verification link", code="invalid_link")
    now = _now()
    # The guarded update is the single-use check: of two concurrent clicks exactly one matches a row.
    used = affected(
        session.execute(
            update(EmailVerification)
            .where(EmailVerification.id == row.id, EmailVerification.used_at.is_(None))
            .values(used_at=now)
        )
    )
    if used != 1:
        session.rollback()
        raise ApiError(409, "this verification link was used already", code="link_used")
    if row.expires_at <= now:
        session.rollback()
        raise ApiError(400, "invalid or expired verification link", code="invalid_link")
    user = session.get(User, row.user_id)
    if user is None or user.email != row.email:  # the address changed since the link was sent
        session.rollback()
        raise ApiError(400, "this link is for another email address", code="invalid_link")
    if user.email_verified_at is None:
        user.email_verified_at = now
        user.updated_at = now
        emit(session, event_type="user.email_verified", user_id=user.id, at=now)
    session.commit()
    return user


def update_profile(session: Session, *, user: User, data: UserUpdate) -> User:
    """Apply the given fields; a changed training profile emits `user.profile_updated` (the whole profile)."""
    changes = data.model_dump(exclude_unset=True)
    before = {name: getattr(user, name) for name in Profile.model_fields}
    for name, value in changes.items():
        if value is None and name != "display_name":
            raise ApiError(422, f"{name} cannot be null")
        setattr(user, name, value)
    if changes:
        user.updated_at = _now()
    after = {name: getattr(user, name) for name in Profile.model_fields}
    if after != before:
        emit(session, event_type="user.profile_updated", user_id=user.id, properties=after, at=user.updated_at)
    session.commit()
    return user


def keep_an_admin(session: Session, *, leaving: User) -> None:
    """409 if `leaving` is the last active admin: someone must be able to administer.

    Every admin row is locked (in one order, so two of these cannot deadlock), so two admins demoting
    each other at once cannot both pass; SQLite serialises writers (the caller runs under retry_write).
    """
    if leaving.role != "admin" or not leaving.is_active:
        return
    admins = session.scalars(
        select(User.id).where(User.role == "admin", User.is_active.is_(True)).order_by(User.id).with_for_update()
    ).all()
    if not set(admins) - {leaving.id}:
        raise ApiError(409, "this is the last admin; make another admin first", code="last_admin")


def set_role(session: Session, *, user_id: str, role: str) -> User:
    """Change a user's role (committed); never removes the last admin."""
    if role not in ROLES:
        raise ApiError(422, f"role must be one of {', '.join(ROLES)}")

    def work() -> User:
        user = session.get(User, user_id, with_for_update=True, populate_existing=True)
        if user is None:
            raise ApiError(404, "user not found")
        if role != "admin":
            keep_an_admin(session, leaving=user)
        user.role = role
        user.updated_at = _now()
        return user

    return retry_write(session, work)


def create_user(session: Session, *, email: str, password: str, role: str) -> User:
    """An account with a verified email, made by an operator (`fitrec admin create-user`); committed."""
    if role not in ROLES:
        raise ApiError(422, f"role must be one of {', '.join(ROLES)}")
    data = UserCreate(email=email, password=password)
    if session.scalar(select(User.id).where(User.email == data.email)) is not None:
        raise ApiError(409, f"an account with {data.email} exists already", code="email_taken")
    user = new_user(
        session,
        email=data.email,
        password_hash=hash_password(data.password),
        profile=Profile(),
        verified=True,
        role=role,
    )
    session.commit()
    return user


# --- sessions ---------------------------------------------------------------------------------


def _issue_refresh(session: Session, *, settings: PlatformSettings, session_id: str, now: datetime) -> str:
    raw = new_secret()
    session.add(
        RefreshToken(
            id=new_id(),
            session_id=session_id,
            token_hash=hash_secret(raw),
            created_at=now,
            expires_at=now + timedelta(days=settings.refresh_token_ttl_days),
        )
    )
    return raw


def _pair(settings: PlatformSettings, *, user: User, session_id: str, refresh: str) -> TokenPair:
    ttl = timedelta(seconds=settings.access_token_ttl_s)
    access = create_access_token(_secret(settings), user_id=user.id, role=user.role, session_id=session_id, ttl=ttl)
    return TokenPair(
        access_token=access,
        expires_in=settings.access_token_ttl_s,
        refresh_token=refresh,
        refresh_expires_in=settings.refresh_token_ttl_days * 86400,
        session_id=session_id,
    )


def start_session(
    session: Session, *, settings: PlatformSettings, user: User, method: str, client_address: str | None
) -> TokenPair:
    """A new session with its first refresh token; the caller commits."""
    now = _now()
    auth_session = AuthSession(
        id=new_id(), user_id=user.id, method=method, client_address=client_address, created_at=now
    )
    session.add(auth_session)
    refresh = _issue_refresh(session, settings=settings, session_id=auth_session.id, now=now)
    return _pair(settings, user=user, session_id=auth_session.id, refresh=refresh)


def login_limiter(settings: PlatformSettings) -> LoginRateLimiter:
    return LoginRateLimiter(
        window=timedelta(seconds=settings.login_window_s),
        max_per_account_address=settings.login_max_failures_per_account_address,
        max_per_account=settings.login_max_failures_per_account,
        max_per_address=settings.login_max_failures_per_address,
        known_for=timedelta(days=settings.login_known_address_days),
    )


def login(
    session: Session, *, settings: PlatformSettings, email: str, password: str, client_address: str | None
) -> TokenPair:
    """Email + password sign-in, rate limited per (account, address), per address and per account."""
    email = email.strip().lower()
    limiter = login_limiter(settings)
    attempt_ids = limiter.begin_attempt(session, email=email, address=client_address)
    user = session.scalar(select(User).where(User.email == email))
    # verify_password spends the same time whether or not the account exists.
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        raise ApiError(401, "invalid email or password", code="invalid_credentials")
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    limiter.succeeded(session, email=email, address=client_address, attempt_ids=attempt_ids)
    pair = start_session(session, settings=settings, user=user, method="password", client_address=client_address)
    session.commit()
    return pair


def revoke_session(session: Session, *, session_id: str, reason: str) -> int:
    return affected(
        session.execute(
            update(AuthSession)
            .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=_now(), revoked_reason=reason)
        )
    )


def refresh(session: Session, *, settings: PlatformSettings, refresh_token: str) -> TokenPair:
    """Rotate: the presented token is spent and a new pair issued. A spent token presented again
    means it was copied; the whole session (token family) is revoked."""
    invalid = ApiError(401, "invalid refresh token", code="invalid_refresh_token")
    row = session.scalar(select(RefreshToken).where(RefreshToken.token_hash == hash_secret(refresh_token)))
    if row is None:
        raise invalid
    auth_session = session.get(AuthSession, row.session_id)
    if auth_session is None or auth_session.revoked_at is not None:
        raise ApiError(401, "session ended; sign in again", code="session_revoked")
    now = _now()
    # Guarded update: of two concurrent uses of one token exactly one rotates it; the other is reuse.
    rotated = affected(
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == row.id, RefreshToken.rotated_at.is_(None))
            .values(rotated_at=now)
        )
    )
    if rotated != 1:
        session.rollback()
        revoke_session(session, session_id=row.session_id, reason="reuse_detected")
        session.commit()
        raise ApiError(401, "refresh token reused; the session is revoked, sign in again", code="refresh_token_reused")
    if row.expires_at <= now:
        session.rollback()
        raise ApiError(401, "refresh token expired; sign in again", code="refresh_token_expired")
    user = session.get(User, auth_session.user_id)
    if user is None or not user.is_active:
        session.rollback()
        raise invalid
    new_refresh = _issue_refresh(session, settings=settings, session_id=auth_session.id, now=now)
    session.commit()
    return _pair(settings, user=user, session_id=auth_session.id, refresh=new_refresh)


def logout(session: Session, *, refresh_token: str) -> None:
    """End the refresh token's session: its refresh tokens and access tokens stop working."""
    row = session.scalar(select(RefreshToken).where(RefreshToken.token_hash == hash_secret(refresh_token)))
    if row is not None:
        revoke_session(session, session_id=row.session_id, reason="logout")
        session.commit()


def revoke_user_sessions(session: Session, *, user_id: str, reason: str) -> int:
    """End every session of a user: their refresh tokens and access tokens stop working. The caller commits."""
    return affected(
        session.execute(
            update(AuthSession)
            .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=_now(), revoked_reason=reason)
        )
    )


def logout_everywhere(session: Session, *, user_id: str) -> int:
    count = revoke_user_sessions(session, user_id=user_id, reason="logout")
    session.commit()
    return count
