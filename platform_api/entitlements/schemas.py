"""Request and response bodies of the entitlements API."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

IdempotencyKey = Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$", examples=["grant-2026-11-welcome"])


class EntitlementsPublic(BaseModel):
    premium: bool = Field(description="trial or active subscription: every premium item is open")
    trial_active: bool
    trial_ends_at: datetime | None
    subscription_status: str | None = Field(description="pending | active | inactive | expired, or null")
    subscription_plan: str | None
    renews_at: datetime | None
    credits: int

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "premium": True,
                    "trial_active": False,
                    "trial_ends_at": None,
                    "subscription_status": "active",
                    "subscription_plan": "premium_monthly",
                    "renews_at": "2026-12-21T10:00:00Z",
                    "credits": 15,
                }
            ]
        }
    )


class TrialPublic(BaseModel):
    started_at: datetime
    ends_at: datetime


class CreditGrantCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"user_id": "7d0f5c9a-1b2c-4d3e-9f00-112233445566", "amount": 50, "idempotency_key": "welcome-2026-11"}
            ]
        },
    )

    user_id: str = Field(min_length=1, max_length=64)
    amount: int = Field(gt=0, le=1_000_000, examples=[50])
    idempotency_key: str = IdempotencyKey


class CreditChargeCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"amount": 5, "idempotency_key": "coach-review-2026-11-21", "ref": "coach-review"}]
        },
    )

    amount: int = Field(gt=0, le=1_000_000, examples=[5])
    idempotency_key: str = IdempotencyKey
    ref: str | None = Field(None, max_length=128, description="what the credits were spent on")


class CreditEntryPublic(BaseModel):
    id: str
    delta: int
    balance_after: int
    reason: str
    ref: str | None
    idempotency_key: str
    created_at: datetime


class CreditEntriesPublic(BaseModel):
    data: list[CreditEntryPublic]
    count: int
    next_cursor: str | None = None
