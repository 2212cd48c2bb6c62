"""Auth tables: users, their sign-in identities, sessions with refresh tokens, API keys, login attempts."""

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from platform_api.db import Base, UTCDateTime

ROLES = ("user", "trainer", "analyst", "admin")  # analyst: reads the product dashboard


class User(Base):
    __tablename__ = "user_account"  # "user" is a reserved word in PostgreSQL

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # Lower-cased; null for OIDC users whose provider shared no verified email.
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))  # null: OIDC-only account
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    role: Mapped[str] = mapped_column(String(16), default="user")
    display_name: Mapped[str | None] = mapped_column(String(100))
    goal: Mapped[str] = mapped_column(String(32), default="general_fitness")
    fitness_level: Mapped[str] = mapped_column(String(32), default="beginner")
    equipment: Mapped[list[str]] = mapped_column(JSON, default=list)
    session_minutes: Mapped[int] = mapped_column(Integer, default=30)
    region: Mapped[str] = mapped_column(String(2), default="US")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class EmailVerification(Base):
    """A single-use verification link; only the token's hash is kept."""

    __tablename__ = "email_verification"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))  # the address the link was sent to
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuthSession(Base):
    """One sign-in: the family of refresh tokens rotated from it. Revoking it ends the session."""

    __tablename__ = "auth_session"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(32))  # password | oidc:<provider>
    client_address: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_reason: Mapped[str | None] = mapped_column(String(32))  # logout | reuse_detected | identity_linked


class RefreshToken(Base):
    __tablename__ = "refresh_token"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("auth_session.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OidcIdentity(Base):
    """A user's account at an OpenID Connect provider (Google, Apple), by the provider's stable subject."""

    __tablename__ = "oidc_identity"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"), index=True)
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("provider", "subject", name="uq_oidc_identity_provider_subject"),)


class OidcNonce(Base):
    """Nonces the platform issued for an OIDC sign-in; each is accepted once, before it expires."""

    __tablename__ = "oidc_nonce"

    nonce_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ApiKey(Base):
    """A service credential for the app backend; scoped, stored hashed, shown once."""

    __tablename__ = "api_key"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))  # shown in listings to tell keys apart
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[str | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LoginAttempt(Base):
    """Attempts the auth rate limiters count per key in a sliding window (platform_api.auth.ratelimit):
    failed or in-flight sign-ins, sign-ups and verification resends; a succeeded sign-in's
    (account, address) row marks a known address."""

    __tablename__ = "login_attempt"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # "account:<email>" | "address:<ip>" | "account-address:<email>|<ip>" | "signup:email:<email>" | …
    key: Mapped[str] = mapped_column(String(400))
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    succeeded: Mapped[bool] = mapped_column(Boolean, default=False)  # False: counted

    __table_args__ = (Index("ix_login_attempt_key_attempted_at", "key", "attempted_at"),)
