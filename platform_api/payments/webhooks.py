"""Gateway webhooks: verify, deduplicate by the gateway's event id, run the saga once.

The receipt row (gateway, event id) is inserted first in the saga's transaction: of any
number of concurrent deliveries of one event exactly one inserts it (PostgreSQL blocks the
others on the primary key until it commits, then they find it; SQLite serialises writers),
and only that one runs the saga. Old replays never get this far: the signature's timestamp
must lie inside the tolerance window.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from platform_api.errors import ApiError
from platform_api.payments.gateways.base import GatewayEvent, InvalidWebhook, PaymentGateway
from platform_api.payments.saga import complete_payment, fail_payment, lock_payment
from platform_api.payments.tables import WebhookReceipt
from platform_api.transactions import retry_write


@dataclass(frozen=True)
class WebhookOutcome:
    status: str  # processed | duplicate | ignored
    event_id: str
    payment_id: str | None
    outcome: str


def verify_webhook(gateway: PaymentGateway, body: bytes, headers: Mapping[str, str]) -> GatewayEvent:
    try:
        return gateway.parse_webhook(body, headers)
    except InvalidWebhook as exc:
        raise ApiError(400, f"webhook rejected: {exc}", code="invalid_webhook") from exc


def _record_receipt(session: Session, gateway: str, event: GatewayEvent, now: datetime) -> bool:
    """True if this delivery stored the receipt first (RETURNING: rowcount of ORM inserts is not reliable)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stored = session.execute(
        insert(WebhookReceipt)
        .values(
            gateway=gateway,
            event_id=event.event_id,
            event_type=event.event_type,
            payment_id=event.payment_id,
            outcome="received",
            received_at=now,
        )
        .on_conflict_do_nothing(index_elements=["gateway", "event_id"])
        .returning(WebhookReceipt.event_id)
    ).first()
    return stored is not None


def handle_webhook(
    session: Session, *, gateway: PaymentGateway, body: bytes, headers: Mapping[str, str], now: datetime | None = None
) -> WebhookOutcome:
    event = verify_webhook(gateway, body, headers)

    def work() -> WebhookOutcome:
        at = now or datetime.now(UTC)
        if not _record_receipt(session, gateway.name, event, at):
            return WebhookOutcome("duplicate", event.event_id, event.payment_id, "already received")
        if event.kind == "ignored" or event.payment_id is None:
            outcome = WebhookOutcome("ignored", event.event_id, event.payment_id, f"{event.event_type}: not handled")
        else:
            payment = lock_payment(session, event.payment_id)
            if (
                payment is None
                or payment.gateway not in (None, gateway.name)
                or (payment.external_id and event.external_id and payment.external_id != event.external_id)
            ):
                # Not stored: the gateway retries, and a payment still being created will exist by then.
                raise ApiError(404, f"no payment {event.payment_id} at {gateway.name}", code="unknown_payment")
            if event.kind == "succeeded":
                result = complete_payment(session, payment=payment, now=at)
            else:
                result = fail_payment(session, payment=payment, reason=event.reason, now=at)
            outcome = WebhookOutcome("processed", event.event_id, payment.id, result)
        receipt = session.get(WebhookReceipt, (gateway.name, event.event_id))
        assert receipt is not None
        receipt.outcome = outcome.outcome
        return outcome

    return retry_write(session, work)
