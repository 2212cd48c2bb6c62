"""The gateway Protocol, the values crossing it, and its errors."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol


@dataclass(frozen=True)
class PaymentRequest:
    payment_id: str  # ours; also the idempotency key at the gateway, so a retried call never charges twice
    user_id: str
    amount_cents: int
    currency: str
    description: str
    payment_method: str | None = None


@dataclass(frozen=True)
class SignedWebhook:
    """A webhook as it travels: raw body and headers (the sandbox produces these for itself)."""

    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class GatewayPayment:
    external_id: str
    client_secret: str | None = None
    # Only the sandbox fills this: the confirmation it will deliver, as a real gateway would call us.
    confirmation: SignedWebhook | None = None


@dataclass(frozen=True)
class GatewayEvent:
    event_id: str
    kind: Literal["succeeded", "failed", "ignored"]
    event_type: str  # the gateway's own name for it
    payment_id: str | None  # ours, carried in the gateway's metadata
    external_id: str | None
    occurred_at: datetime
    reason: str | None = None


class GatewayUnavailable(Exception):
    """The gateway could not be reached or failed on its side: try the next one."""


class GatewayDeclined(Exception):
    """The gateway refused the payment: final, no fallback."""


class InvalidWebhook(Exception):
    """Signature missing or wrong, timestamp outside the tolerance, or a body that is not an event."""


class PaymentGateway(Protocol):
    name: str

    def create_payment(self, request: PaymentRequest) -> GatewayPayment:
        """Open a payment awaiting confirmation; raises GatewayUnavailable or GatewayDeclined."""
        ...

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> GatewayEvent:
        """Verify the signature and freshness, then read the event; raises InvalidWebhook."""
        ...
