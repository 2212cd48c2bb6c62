"""A regional payment provider for markets Stripe does not serve for us: JSON over HTTPS, HMAC webhooks."""

from collections.abc import Mapping

import httpx

from platform_api.payments.gateways.base import (
    GatewayDeclined,
    GatewayEvent,
    GatewayPayment,
    GatewayUnavailable,
    PaymentRequest,
)
from platform_api.payments.gateways.generic import parse_event
from platform_api.payments.gateways.signing import verify


class RegionalGateway:
    name = "regional"

    def __init__(
        self, *, base_url: str, api_key: str, webhook_secret: str, tolerance_s: int, client: httpx.Client | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.tolerance_s = tolerance_s
        self.client = client or httpx.Client(timeout=httpx.Timeout(10.0, connect=3.0))

    def create_payment(self, request: PaymentRequest) -> GatewayPayment:
        try:
            response = self.client.post(
                f"{self.base_url}/payments",
                json={
                    "reference": request.payment_id,
                    "amount": request.amount_cents,
                    "currency": request.currency,
                    "customer": request.user_id,
                    "description": request.description,
                    "payment_method": request.payment_method,
                },
                headers={"Authorization": f"Bearer {self.api_key}", "Idempotency-Key": request.payment_id},
            )
        except httpx.HTTPError as exc:
            raise GatewayUnavailable(f"regional gateway unreachable: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise GatewayUnavailable(f"regional gateway answered {response.status_code}")
        if response.status_code >= 400:
            raise GatewayDeclined(f"regional gateway refused the payment ({response.status_code})")
        try:
            doc = response.json()
            return GatewayPayment(external_id=str(doc["id"]), client_secret=doc.get("client_secret"))
        except (ValueError, KeyError) as exc:
            raise GatewayUnavailable("regional gateway answered an unreadable body") from exc

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> GatewayEvent:
        verify(body, headers, self.webhook_secret, tolerance_s=self.tolerance_s)
        return parse_event(body)
