"""Request and response bodies of the auth routes."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator, model_validator

from platform_api.events.schemas import Goal, Level

Role = Literal["user", "trainer", "analyst", "admin"]
# Scopes a service API key can carry; routes check them with platform_api.deps.require_scope.
Scope = Literal["recommendations:read", "events:write", "feedback:write", "analytics:read", "users:read"]
# Lengths of what the auth routes accept: every string is bounded.
EMAIL_MAX = 320  # RFC 5321 (local part 64 + "@" + domain 255)
PASSWORD_MAX = 128
NAME_MAX = 100
EquipmentName = Annotated[str, Field(min_length=1, max_length=50)]


class Profile(BaseModel):
    """Training profile; also the properties of the `user.created` event."""

    goal: Goal = "general_fitness"
    fitness_level: Level = "beginner"
    equipment: list[EquipmentName] = Field(default_factory=list, max_length=20)
    session_minutes: int = Field(30, ge=5, le=240)
    region: str = Field("US", max_length=2, pattern=r"^[A-Z]{2}$")


class UserCreate(Profile):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "ada@example.com",
                    "password": "correct horse battery",
                    "display_name": "Ada",
                    "goal": "build_strength",
                    "fitness_level": "beginner",
                    "equipment": ["dumbbell"],
                    "session_minutes": 45,
                    "region": "US",
                }
            ]
        }
    )

    email: EmailStr = Field(max_length=EMAIL_MAX)
    password: str = Field(min_length=10, max_length=PASSWORD_MAX)
    display_name: str | None = Field(None, min_length=1, max_length=NAME_MAX)

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @model_validator(mode="after")
    def _password_not_email(self) -> "UserCreate":
        if not self.password.strip():
            raise ValueError("password must not be blank")
        if self.password.lower() in (self.email, self.email.split("@")[0]):
            raise ValueError("password must not be the email address")
        return self


class UserUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"goal": "endurance", "session_minutes": 30}]}
    )

    display_name: str | None = Field(None, min_length=1, max_length=NAME_MAX)
    goal: Goal | None = None
    fitness_level: Level | None = None
    equipment: list[EquipmentName] | None = Field(None, max_length=20)
    session_minutes: int | None = Field(None, ge=5, le=240)
    region: str | None = Field(None, max_length=2, pattern=r"^[A-Z]{2}$")


class UserPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "3f1c2d9e-6a0b-4d52-9d6e-0c8f7a1b2c3d",
                    "email": "ada@example.com",
                    "email_verified": True,
                    "role": "user",
                    "display_name": "Ada",
                    "goal": "build_strength",
                    "fitness_level": "beginner",
                    "equipment": ["dumbbell"],
                    "session_minutes": 45,
                    "region": "US",
                    "created_at": "2026-11-20T18:30:00Z",
                }
            ]
        }
    )

    id: str
    email: str | None
    email_verified: bool
    role: Role
    display_name: str | None
    goal: str
    fitness_level: str
    equipment: list[str]
    session_minutes: int
    region: str
    created_at: datetime


class RoleUpdate(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "trainer"}]})

    role: Role


class LoginIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "ada@example.com", "password": "correct horse battery"}]}
    )

    email: str = Field(min_length=3, max_length=EMAIL_MAX)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX)


class RefreshIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"refresh_token": "q3V0...Zk8"}]})

    refresh_token: str = Field(min_length=20, max_length=200)


class TokenPairPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOiJIUzI1NiIs...",
                    "token_type": "bearer",
                    "expires_in": 900,
                    "refresh_token": "q3V0...Zk8",
                    "refresh_expires_in": 2592000,
                }
            ]
        }
    )

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds the access token is valid")
    refresh_token: str = Field(description="single use: each refresh returns a new one")
    refresh_expires_in: int


class VerifyEmailIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"token": "eyJhbGciOiJIUzI1NiIs..."}]})

    token: str = Field(min_length=20, max_length=2000)


class ResendVerificationIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "ada@example.com"}]})

    email: str = Field(min_length=3, max_length=EMAIL_MAX)


class SignUpAccepted(BaseModel):
    """The answer to a sign-up or a resend: the same whether or not the address has an account."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "ada@example.com", "message": "check your inbox at ada@example.com to continue"}]
        }
    )

    email: str
    message: str = Field(description="what happens next; the same text for every address")


class EmailVerifiedPublic(BaseModel):
    user_id: str
    email: str
    email_verified: Literal[True] = True


class OidcNoncePublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"nonce": "n-0S6_WzA2Mj", "expires_at": "2026-11-20T18:40:00Z"}]}
    )

    nonce: str = Field(description="put it in the provider's authorization request; single use")
    expires_at: datetime


class OidcLoginIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id_token": "eyJhbGciOiJSUzI1NiIsImtpZCI6...",
                    "nonce": "n-0S6_WzA2Mj",
                    "profile": {"goal": "lose_weight", "fitness_level": "beginner"},
                }
            ]
        }
    )

    id_token: str = Field(min_length=20, max_length=10_000)
    nonce: str = Field(min_length=8, max_length=200)
    profile: Profile | None = Field(None, description="used only when the sign-in creates the account")


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "app backend", "scopes": ["recommendations:read", "events:write"]}]}
    )

    name: str = Field(min_length=1, max_length=NAME_MAX)
    scopes: list[Scope] = Field(min_length=1, max_length=10)


class ApiKeyPublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "6f0e...",
                    "name": "app backend",
                    "prefix": "fitrec_sk_AbCd1234",
                    "scopes": ["recommendations:read"],
                    "created_at": "2026-11-20T18:30:00Z",
                    "revoked_at": None,
                }
            ]
        }
    )

    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="the secret: shown once, store it now")


class ApiKeysPublic(BaseModel):
    data: list[ApiKeyPublic]
    count: int
