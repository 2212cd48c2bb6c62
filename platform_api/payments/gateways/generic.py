"""The event body of the HMAC-signed gateways (regional provider and sandbox).

`{"id": "evt_...", "type": "payment.succeeded" | "payment.failed" | ..., "created": <unix>,
  "data": {"id": "<gateway payment id>", "reference": "<our payment id>", "reason": "..."}}`
"""

import json
from datetime import UTC, datetime
from typing import Any

from platform_api.payments.gateways.base import GatewayEvent, InvalidWebhook

KINDS = {"payment.succeeded": "succeeded", "payment.failed": "failed"}


def build_event(
    *, event_id: str, event_type: str, external_id: str, payment_id: str, created: int, reason: str | None = None
) -> bytes:
    data: dict[str, Any] = {"id": external_id, "reference": payment_id}
    if reason:
        data["reason"] = reason
    return json.dumps({"id": event_id, "type": event_type, "created": created, "data": data}).encode()


def parse_event(body: bytes) -> GatewayEvent:
    try:
        doc = json.loads(body)
        event_id, event_type, data = str(doc["id"]), str(doc["type"]), doc["data"]
        created = datetime.fromtimestamp(int(doc["created"]), UTC)
        if not isinstance(data, dict) or not event_id:
            raise TypeError("data must be an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidWebhook(f"not a gateway event: {exc}") from exc
    kind = KINDS.get(event_type, "ignored")
    return GatewayEvent(
        event_id=event_id,
        kind=kind,  # type: ignore[arg-type]
        event_type=event_type,
        payment_id=str(data["reference"]) if data.get("reference") else None,
        external_id=str(data["id"]) if data.get("id") else None,
        occurred_at=created,
        reason=str(data["reason"])[:200] if data.get("reason") else None,
    )
