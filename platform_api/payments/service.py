"""Creating payments, idempotently by the client's Idempotency-Key, routed to a gateway by region.

1. Claim the key: a row (user, key, request hash, in_progress) committed first. The same key
   with the same body replays the stored response; with another body it is a 409; while the
   first request is still running it is a 409 too (retry later).
2. Commit the payment (pending) and, for a subscription, the pending subscription.
3. Call the gateways of the region in fallback order, outside any database transaction;
   our payment id is their idempotency key, so a retried call never opens a second charge.
4. Commit the gateway's reference and the response under the key. The outcome arrives later
   by webhook (payments.webhooks).
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import uuid4

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from platform_api.entitlements.service import open_pending_subscription
from platform_api.errors import ApiError
from platform_api.payments.gateways.base import (
    GatewayDeclined,
    GatewayPayment,
    GatewayUnavailable,
    PaymentRequest,
    SignedWebhook,
)
from platform_api.payments.gateways.routing import Gateways
from platform_api.payments.products import PRODUCTS, currency_for
from platform_api.payments.saga import fail_payment, lock_payment
from platform_api.payments.schemas import PaymentCreate, PaymentPublic
from platform_api.payments.tables import IdempotencyRecord, Payment
from platform_api.transactions import retry_write

# A claim older than this belongs to a request that died; a retry may take the key over.
STALE_CLAIM = timedelta(minutes=5)


@dataclass(frozen=True)
class PaymentResult:
    status_code: int
    body: dict[str, Any]
    replayed: bool
    confirmation: SignedWebhook | None = None  # sandbox only: the webhook it will deliver
    gateway: str | None = None


def request_hash(body: PaymentCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_idempotency_key(key: str | None) -> str:
    if key is None or not key.strip():
        raise ApiError(400, "the Idempotency-Key header is required", code="idempotency_key_required")
    if len(key) > 255 or not key.isascii() or not key.isprintable():
        raise ApiError(400, "Idempotency-Key must be 1-255 printable ASCII characters", code="invalid_idempotency_key")
    return key


def public(payment: Payment) -> PaymentPublic:
    return PaymentPublic(
        id=payment.id,
        product_code=payment.product_code,
        amount_cents=payment.amount_cents,
        currency=payment.currency,
        region=payment.region,
        gateway=payment.gateway,
        status=payment.status,
        failure_reason=payment.failure_reason,
        client_secret=payment.client_secret,
        created_at=payment.created_at,
        updated_at=payment.updated_at,
    )


def _claim(session: Session, *, user_id: str, key: str, digest: str, now: datetime) -> IdempotencyRecord | None:
    """None if this request now owns the key; the finished record to replay otherwise (or ApiError 409)."""
    session.add(IdempotencyRecord(user_id=user_id, key=key, request_hash=digest, state="in_progress", created_at=now))
    try:
        session.commit()
        return None
    except IntegrityError:
        session.rollback()
    record = session.scalars(
        select(IdempotencyRecord)
        .where(IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key)
        .execution_options(populate_existing=True)
    ).one()
    if record.request_hash != digest:
        raise ApiError(
            409, "this Idempotency-Key was used with a different request body", code="idempotency_key_reused"
        )
    if record.state == "done":
        return record
    if record.created_at < now - STALE_CLAIM:
        taken = cast(
            CursorResult[Any],
            session.execute(
                update(IdempotencyRecord)
                .where(
                    IdempotencyRecord.user_id == user_id,
                    IdempotencyRecord.key == key,
                    IdempotencyRecord.state == "in_progress",
                    IdempotencyRecord.created_at == record.created_at,
                )
                .values(created_at=now)
            ),
        ).rowcount
        session.commit()
        if taken == 1:
            return None
    raise ApiError(
        409, "a request with this Idempotency-Key is still in progress; retry shortly", code="request_in_progress"
    )


def _call_gateways(
    gateways: Gateways, region: str, request: PaymentRequest
) -> tuple[str | None, GatewayPayment | None, str | None]:
    """(gateway name, its payment, failure reason): the first gateway of the route that is up."""
    errors: list[str] = []
    for gateway in gateways.route(region):
        try:
            return gateway.name, gateway.create_payment(request), None
        except GatewayUnavailable as exc:
            errors.append(f"{gateway.name}: {exc}")
        except GatewayDeclined as exc:
            return gateway.name, None, f"declined: {exc}"[:200]
    return (
        None,
        None,
        ("no payment gateway available: " + "; ".join(errors))[:200]
        if errors
        else f"no payment gateway serves region {region}",
    )


def create_payment(
    session: Session,
    *,
    user_id: str,
    region: str,
    idempotency_key: str | None,
    body: PaymentCreate,
    gateways: Gateways,
    now: datetime | None = None,
) -> PaymentResult:
    key = check_idempotency_key(idempotency_key)
    digest = request_hash(body)
    now = now or datetime.now(UTC)
    done = _claim(session, user_id=user_id, key=key, digest=digest, now=now)
    if done is not None:
        assert done.response_status is not None and done.response_body is not None
        return PaymentResult(done.response_status, done.response_body, replayed=True)
    try:
        return _create(session, user_id=user_id, region=region, key=key, body=body, gateways=gateways, now=now)
    except BaseException:
        # Free the key so the client's retry runs again instead of waiting for the claim to go stale.
        session.rollback()
        session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.user_id == user_id,
                IdempotencyRecord.key == key,
                IdempotencyRecord.state == "in_progress",
            )
        )
        session.commit()
        raise


def _create(
    session: Session, *, user_id: str, region: str, key: str, body: PaymentCreate, gateways: Gateways, now: datetime
) -> PaymentResult:
    product = PRODUCTS[body.product_code]
    currency = currency_for(region)
    payment = Payment(
        id=str(uuid4()),
        user_id=user_id,
        product_code=product.code,
        amount_cents=product.price(currency),
        currency=currency,
        region=region.upper(),
        status="pending",
        created_at=now,
        updated_at=now,
    )

    def open_payment() -> None:
        session.add(payment)
        if product.kind == "subscription":
            open_pending_subscription(session, user_id=user_id, plan_code=product.code, payment_id=payment.id, now=now)

    retry_write(session, open_payment)
    request = PaymentRequest(
        payment_id=payment.id,
        user_id=user_id,
        amount_cents=payment.amount_cents,
        currency=currency,
        description=product.title,
        payment_method=body.payment_method,
    )
    gateway_name, created, failure = _call_gateways(gateways, region, request)

    def record_outcome() -> PaymentPublic:
        locked = lock_payment(session, payment.id)
        assert locked is not None
        locked.gateway = gateway_name
        if created is not None:
            locked.external_id = created.external_id
            locked.client_secret = created.client_secret
        locked.updated_at = datetime.now(UTC)
        if failure is not None:
            fail_payment(session, payment=locked, reason=failure, now=locked.updated_at)
        response = public(locked)
        session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key)
            .values(state="done", response_status=201, response_body=response.model_dump(mode="json"))
        )
        return response

    response = retry_write(session, record_outcome)
    return PaymentResult(
        201,
        response.model_dump(mode="json"),
        replayed=False,
        confirmation=created.confirmation if created else None,
        gateway=gateway_name,
    )


def list_payments(session: Session, *, user_id: str, limit: int, offset: int = 0) -> tuple[list[Payment], int]:
    where = Payment.user_id == user_id
    rows = session.scalars(
        select(Payment).where(where).order_by(Payment.created_at.desc(), Payment.id).limit(limit).offset(offset)
    ).all()
    return list(rows), session.scalar(select(func.count()).select_from(Payment).where(where)) or 0
