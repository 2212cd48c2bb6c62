"""Stripe (US and EU): PaymentIntents through the official library, webhooks verified by it.

Stripe confirms asynchronously: the app confirms the PaymentIntent with the client secret,
and Stripe calls our webhook with `payment_intent.succeeded` or `payment_intent.payment_failed`.
Our payment id travels in the intent's metadata and is the Stripe idempotency key.
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import stripe

from platform_api.payments.gateways.base import (
    GatewayDeclined,
    GatewayEvent,
    GatewayPayment,
    GatewayUnavailable,
    InvalidWebhook,
    PaymentRequest,
)

KINDS = {"payment_intent.succeeded": "succeeded", "payment_intent.payment_failed": "failed"}
SIGNATURE_HEADER = "Stripe-Signature"


class StripeGateway:
    name = "stripe"

    def __init__(
        self, *, api_key: str, webhook_secret: str, tolerance_s: int, client: stripe.StripeClient | None = None
    ) -> None:
        self.webhook_secret = webhook_secret
        self.tolerance_s = tolerance_s
        self.client = client or stripe.StripeClient(api_key, max_network_retries=1)

    def create_payment(self, request: PaymentRequest) -> GatewayPayment:
        params: dict[str, Any] = {
            "amount": request.amount_cents,
            "currency": request.currency.lower(),
            "description": request.description,
            "metadata": {"fitrec_payment_id": request.payment_id, "fitrec_user_id": request.user_id},
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        }
        if request.payment_method:
            params.update(payment_method=request.payment_method, confirm=True)
        try:
            intent = self.client.v1.payment_intents.create(
                params,  # type: ignore[arg-type]
                options={"idempotency_key": request.payment_id},
            )
        except stripe.CardError as exc:
            raise GatewayDeclined(exc.user_message or "card declined") from exc
        except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
            raise GatewayUnavailable(f"stripe unreachable: {exc}") from exc
        except stripe.StripeError as exc:
            if (exc.http_status or 500) >= 500:
                raise GatewayUnavailable(f"stripe failed: {exc}") from exc
            raise GatewayDeclined(str(exc)) from exc
        return GatewayPayment(external_id=intent.id, client_secret=intent.client_secret)

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> GatewayEvent:
        signature = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower()), None)
        try:
            event = stripe.Webhook.construct_event(
                body, signature, self.webhook_secret, tolerance=self.tolerance_s
            ).to_dict()
            obj = event["data"]["object"]
            event_type = str(event["type"])
        except stripe.SignatureVerificationError as exc:
            raise InvalidWebhook(str(exc)) from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # signed, but not an event
            raise InvalidWebhook(f"not a Stripe event: {exc}") from exc
        metadata = obj.get("metadata") or {}
        error = obj.get("last_payment_error") or {}
        kind = KINDS.get(event_type, "ignored")
        return GatewayEvent(
            event_id=event["id"],
            kind=kind,  # type: ignore[arg-type]
            event_type=event_type,
            payment_id=metadata.get("fitrec_payment_id"),
            external_id=obj.get("id"),
            occurred_at=datetime.fromtimestamp(int(event.get("created") or 0), UTC),
            reason=(error.get("code") or error.get("message")) if kind == "failed" else None,
        )
