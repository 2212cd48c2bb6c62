"""The embedded default: a gateway that behaves like the real ones, without a network.

It accepts the payment as pending and answers later with a signed webhook, exactly like
Stripe or the regional provider: the platform learns the outcome only through its webhook
endpoint. The outcome follows Stripe's test payment methods: `pm_card_visa` (and any other
method) succeeds, `pm_card_chargeDeclined` fails, `pm_card_pending` never confirms.
"""

import time
import uuid
from collections.abc import Mapping

from platform_api.payments.gateways.base import (
    GatewayEvent,
    GatewayPayment,
    PaymentRequest,
    SignedWebhook,
)
from platform_api.payments.gateways.generic import build_event, parse_event
from platform_api.payments.gateways.signing import HEADER, sign, verify

DECLINED = "pm_card_chargeDeclined"
NEVER_CONFIRMS = "pm_card_pending"


class SandboxGateway:
    name = "sandbox"

    def __init__(self, *, webhook_secret: str, tolerance_s: int) -> None:
        self.webhook_secret = webhook_secret
        self.tolerance_s = tolerance_s

    def signed(self, body: bytes, *, timestamp: int | None = None) -> SignedWebhook:
        return SignedWebhook(
            body=body,
            headers={HEADER: sign(body, self.webhook_secret, timestamp=timestamp), "Content-Type": "application/json"},
        )

    def create_payment(self, request: PaymentRequest) -> GatewayPayment:
        # Deterministic per payment, like a gateway honouring our idempotency key.
        external_id = "sbx_" + uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox:{request.payment_id}").hex
        confirmation = None
        if request.payment_method != NEVER_CONFIRMS:
            declined = request.payment_method == DECLINED
            body = build_event(
                event_id="evt_" + uuid.uuid5(uuid.NAMESPACE_URL, f"sandbox-event:{request.payment_id}").hex,
                event_type="payment.failed" if declined else "payment.succeeded",
                external_id=external_id,
                payment_id=request.payment_id,
                created=int(time.time()),
                reason="card_declined" if declined else None,
            )
            confirmation = self.signed(body)
        return GatewayPayment(external_id=external_id, client_secret=f"{external_id}_secret", confirmation=confirmation)

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> GatewayEvent:
        verify(body, headers, self.webhook_secret, tolerance_s=self.tolerance_s)
        return parse_event(body)
