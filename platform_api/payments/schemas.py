"""Request and response bodies of the payments API."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from platform_api.payments.products import ProductCode


class PaymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"product_code": "premium_monthly"}]})

    product_code: ProductCode
    # A tokenised payment method from the app (Stripe's `pm_...`). In the sandbox, Stripe's test
    # tokens choose the outcome: pm_card_visa succeeds, pm_card_chargeDeclined fails.
    payment_method: str | None = Field(
        None, max_length=103, pattern=r"^pm_[A-Za-z0-9_]{1,100}$", examples=["pm_card_visa"]
    )


class PaymentPublic(BaseModel):
    id: str
    product_code: str
    amount_cents: int
    currency: str
    region: str
    gateway: str | None
    status: str = Field(description="pending until the gateway confirms by webhook, then succeeded or failed")
    failure_reason: str | None
    client_secret: str | None = Field(None, description="for the app to confirm the payment with the gateway")
    created_at: datetime
    updated_at: datetime

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "5a3c1d8e-7b7e-4c55-a0a4-0d1f3c9e2b11",
                    "product_code": "premium_monthly",
                    "amount_cents": 999,
                    "currency": "USD",
                    "region": "US",
                    "gateway": "sandbox",
                    "status": "pending",
                    "failure_reason": None,
                    "client_secret": "sbx_4f1c..._secret",
                    "created_at": "2026-11-21T10:00:00Z",
                    "updated_at": "2026-11-21T10:00:00Z",
                }
            ]
        }
    )


class PaymentsPublic(BaseModel):
    data: list[PaymentPublic]
    count: int


class ProductPublic(BaseModel):
    code: str
    kind: str
    title: str
    prices: dict[str, int]
    period_days: int | None
    credits: int


class ProductsPublic(BaseModel):
    data: list[ProductPublic]
    count: int


class WebhookAck(BaseModel):
    status: str = Field(description="processed | duplicate | ignored")
    event_id: str
    payment_id: str | None
    outcome: str
