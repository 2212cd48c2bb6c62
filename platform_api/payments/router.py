"""Payments over HTTP: products, idempotent payment creation, and the gateways' webhooks."""

import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Header, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from platform_api.auth.ownership import get_owned
from platform_api.background import relay_emails
from platform_api.boundary import RowId
from platform_api.deps import CurrentUser, EmailDep, PlatformDep, SessionDep
from platform_api.email.base import EmailSender
from platform_api.errors import ERROR_SCHEMA, ApiError
from platform_api.pagination import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET
from platform_api.payments import service
from platform_api.payments.deps import GatewaysDep
from platform_api.payments.gateways.base import SignedWebhook
from platform_api.payments.gateways.routing import Gateways
from platform_api.payments.products import PRODUCTS
from platform_api.payments.schemas import (
    PaymentCreate,
    PaymentPublic,
    PaymentsPublic,
    ProductPublic,
    ProductsPublic,
    WebhookAck,
)
from platform_api.payments.tables import Payment
from platform_api.payments.webhooks import handle_webhook
from platform_api.runtime import Platform

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/payments", tags=["payments"])
# Gateway events are a few KB; anything far larger is not one.
MAX_WEBHOOK_BYTES = 1024 * 1024


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error responses a route documents, each in the one error shape."""
    return {code: ERROR_SCHEMA for code in codes}


def deliver_sandbox_confirmation(
    platform: Platform, gateways: Gateways, mailer: EmailSender, webhook: SignedWebhook, delay_s: float
) -> None:
    """The sandbox 'bank' answering: its signed webhook goes through the same handler as a real one."""
    time.sleep(delay_s)
    try:
        with platform.sessions() as session:
            handle_webhook(session, gateway=gateways.get("sandbox"), body=webhook.body, headers=webhook.headers)
    except Exception:  # noqa: BLE001 - like a gateway, the sandbox would retry; here it is logged
        log.exception("sandbox webhook delivery failed")
    relay_emails(platform, mailer)


@router.get("/products", response_model=ProductsPublic)
def list_products() -> ProductsPublic:
    """List what can be bought: subscription plans and credit packs with their prices in cents."""
    data = [
        ProductPublic(
            code=p.code,
            kind=p.kind,
            title=p.title,
            prices=p.prices,
            period_days=p.period.days if p.period else None,
            credits=p.credits,
        )
        for p in PRODUCTS.values()
    ]
    return ProductsPublic(data=data, count=len(data))


@router.post("", status_code=201, response_model=PaymentPublic, responses=errors(400, 401, 409, 422))
def create_payment(
    body: PaymentCreate,
    user: CurrentUser,
    session: SessionDep,
    platform: PlatformDep,
    gateways: GatewaysDep,
    mailer: EmailDep,
    response: Response,
    background: BackgroundTasks,
    idempotency_key: Annotated[
        str | None,
        Header(max_length=255, description="unique per intended payment; retries reuse it", examples=["pay-7f3c2a"]),
    ] = None,
) -> PaymentPublic:
    """Create a payment for a product (pending until the gateway confirms by webhook); idempotent by key."""
    result = service.create_payment(
        session, user_id=user.id, region=user.region, idempotency_key=idempotency_key, body=body, gateways=gateways
    )
    response.status_code = result.status_code
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    if result.confirmation is not None:
        background.add_task(
            deliver_sandbox_confirmation,
            platform,
            gateways,
            mailer,
            result.confirmation,
            platform.settings.sandbox_confirm_delay_s,
        )
    elif not result.replayed:
        background.add_task(relay_emails, platform, mailer)  # a synchronous failure queued an email
    return PaymentPublic.model_validate(result.body)


@router.get("", response_model=PaymentsPublic, responses=errors(401, 422))
def list_payments(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> PaymentsPublic:
    """List the caller's payments, newest first."""
    rows, count = service.list_payments(session, user_id=user.id, limit=limit, offset=offset)
    return PaymentsPublic(data=[service.public(p) for p in rows], count=count)


@router.get("/{payment_id}", response_model=PaymentPublic, responses=errors(401, 404))
def get_payment(payment_id: RowId, user: CurrentUser, session: SessionDep) -> PaymentPublic:
    """Read one of the caller's payments (404 for anyone else's)."""
    return service.public(get_owned(session, Payment, payment_id, user))


@router.post(
    "/webhooks/{gateway}",
    response_model=WebhookAck,
    responses=errors(400, 404, 413),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "example": {
                        "id": "evt_1",
                        "type": "payment.succeeded",
                        "created": 1795000000,
                        "data": {"id": "sbx_4f1c", "reference": "5a3c1d8e-7b7e-4c55-a0a4-0d1f3c9e2b11"},
                    }
                }
            },
        }
    },
)
async def receive_webhook(
    gateway: Annotated[str, Path(max_length=32)],
    request: Request,
    platform: PlatformDep,
    gateways: GatewaysDep,
    mailer: EmailDep,
    background: BackgroundTasks,
) -> WebhookAck:
    """Receive a gateway's signed event (Stripe-Signature or Webhook-Signature); each event id acts once."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_WEBHOOK_BYTES:
        raise ApiError(413, f"a webhook body is at most {MAX_WEBHOOK_BYTES} bytes")
    body = await request.body()
    if len(body) > MAX_WEBHOOK_BYTES:
        raise ApiError(413, f"a webhook body is at most {MAX_WEBHOOK_BYTES} bytes")
    headers = dict(request.headers)
    gw = gateways.get(gateway)

    def run() -> WebhookAck:
        with platform.sessions() as session:
            outcome = handle_webhook(session, gateway=gw, body=body, headers=headers)
        return WebhookAck(
            status=outcome.status, event_id=outcome.event_id, payment_id=outcome.payment_id, outcome=outcome.outcome
        )

    ack = await run_in_threadpool(run)
    if ack.status == "processed":
        background.add_task(relay_emails, platform, mailer)
    return ack
