"""Payments on SQLite and PostgreSQL: Idempotency-Key semantics, the sandbox's asynchronous confirmation,
the success saga and the failure compensation, webhook signatures (HMAC and Stripe's), replays, and
20 concurrent duplicate webhooks giving exactly one activation."""

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
import stripe
import test_platform_support as support
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select
from test_platform_support import SANDBOX_SECRET, error_code, events_of, mailbox, make_account

from platform_api.entitlements.service import get_status, open_pending_subscription
from platform_api.entitlements.tables import Subscription
from platform_api.payments import service
from platform_api.payments.gateways.base import GatewayDeclined, GatewayPayment, GatewayUnavailable, PaymentRequest
from platform_api.payments.gateways.generic import build_event
from platform_api.payments.gateways.routing import Gateways, build_gateways
from platform_api.payments.gateways.sandbox import SandboxGateway
from platform_api.payments.schemas import PaymentCreate
from platform_api.payments.tables import Payment, WebhookReceipt
from platform_api.payments.webhooks import handle_webhook
from platform_api.runtime import Platform
from platform_api.transactions import retry_write

# Fixtures shared by the platform tests.
client = support.client
platform = support.platform

SANDBOX = SandboxGateway(webhook_secret=SANDBOX_SECRET, tolerance_s=300)


def pay(client: TestClient, headers: dict[str, str], key: str | None, **body: object) -> object:
    extra = {"Idempotency-Key": key} if key is not None else {}
    return client.post("/v1/payments", json={"product_code": "premium_monthly", **body}, headers={**headers, **extra})


def sandbox_webhook(
    payment: dict[str, object],
    *,
    kind: str = "payment.succeeded",
    event_id: str | None = None,
    timestamp: int | None = None,
    reason: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    body = build_event(
        event_id=event_id or f"evt_{uuid4().hex}",
        event_type=kind,
        external_id=str(payment["client_secret"]).removesuffix("_secret"),
        payment_id=str(payment["id"]),
        created=int(time.time()),
        reason=reason,
    )
    signed = SANDBOX.signed(body, timestamp=timestamp)
    return signed.body, signed.headers


@pytest.mark.security
def test_idempotency_key(platform: Platform, client: TestClient) -> None:
    user, other = make_account(platform), make_account(platform)
    first = pay(client, user.headers, "key-1")
    assert first.status_code == 201, first.text
    replay = pay(client, user.headers, "key-1")
    assert replay.status_code == 201 and replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    changed = pay(client, user.headers, "key-1", product_code="premium_yearly")
    assert changed.status_code == 409 and error_code(changed) == "idempotency_key_reused"
    missing = pay(client, user.headers, None)
    assert missing.status_code == 400 and error_code(missing) == "idempotency_key_required"
    assert pay(client, user.headers, "x" * 300).status_code == 422  # the header's documented maxLength
    assert pay(client, user.headers, "key-2", product_code="gold").status_code == 422
    theirs = pay(client, other.headers, "key-1")  # keys are per user
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]
    assert client.get("/v1/payments", headers=user.headers).json()["count"] == 1


def test_sandbox_success_runs_the_saga(platform: Platform, client: TestClient) -> None:
    user = make_account(platform)
    created = pay(client, user.headers, "buy-premium").json()
    assert created["status"] == "pending" and created["gateway"] == "sandbox" and created["amount_cents"] == 999
    # The sandbox confirmed by signed webhook after the response (a background task of the request).
    payment = client.get(f"/v1/payments/{created['id']}", headers=user.headers).json()
    assert payment["status"] == "succeeded"
    me = client.get("/v1/entitlements/me", headers=user.headers).json()
    assert me["premium"] and me["subscription_status"] == "active" and me["subscription_plan"] == "premium_monthly"
    renews = datetime.fromisoformat(me["renews_at"])
    assert abs(renews - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)
    [completed] = events_of(platform, "payment.completed", user_id=user.id)
    assert completed.properties["payment_id"] == created["id"] and completed.properties["amount_cents"] == 999
    [activated] = events_of(platform, "subscription.activated", user_id=user.id)
    assert datetime.fromisoformat(activated.properties["renews_at"]) == renews
    assert [m.subject for m in mailbox(platform, user.email)] == ["Your fitrec Premium is active"]
    premium_video = client.get("/v1/content", params={"premium": True}, headers=user.headers).json()["data"][0]["id"]
    assert client.get(f"/v1/content/{premium_video}", headers=user.headers).status_code == 200


def test_credit_pack_purchase(platform: Platform, client: TestClient) -> None:
    user = make_account(platform, region="DE")
    created = pay(client, user.headers, "credits", product_code="credits_50").json()
    assert created["currency"] == "EUR"
    assert client.get("/v1/entitlements/me", headers=user.headers).json()["credits"] == 50
    assert events_of(platform, "subscription.activated", user_id=user.id) == []


def test_declined_payment_compensates(platform: Platform, client: TestClient) -> None:
    user = make_account(platform)
    created = pay(client, user.headers, "declined", payment_method="pm_card_chargeDeclined").json()
    payment = client.get(f"/v1/payments/{created['id']}", headers=user.headers).json()
    assert payment["status"] == "failed" and payment["failure_reason"] == "card_declined"
    me = client.get("/v1/entitlements/me", headers=user.headers).json()
    assert me["subscription_status"] == "inactive" and not me["premium"]
    [failed] = events_of(platform, "payment.failed", user_id=user.id)
    assert failed.properties["reason"] == "card_declined"
    assert events_of(platform, "payment.completed", user_id=user.id) == []
    assert [m.subject for m in mailbox(platform, user.email)] == ["Your fitrec payment did not go through"]


@pytest.mark.security
def test_webhook_signature_replay_and_dedupe(platform: Platform, client: TestClient) -> None:
    user = make_account(platform)
    created = pay(client, user.headers, "pending", payment_method="pm_card_pending").json()
    url = "/v1/payments/webhooks/sandbox"
    body, headers = sandbox_webhook(created, event_id="evt_fixed")
    tampered = body.replace(b"payment.succeeded", b"payment.failed")
    assert error_code(client.post(url, content=tampered, headers=headers)) == "invalid_webhook"
    assert client.post(url, content=body, headers={}).status_code == 400
    forged = SandboxGateway(webhook_secret="not-the-secret", tolerance_s=300).signed(body)
    assert client.post(url, content=body, headers=forged.headers).status_code == 400
    old_body, old_headers = sandbox_webhook(created, event_id="evt_old", timestamp=int(time.time()) - 301)
    stale = client.post(url, content=old_body, headers=old_headers)
    assert stale.status_code == 400 and "tolerance" in stale.json()["error"]["message"]
    assert client.get(f"/v1/payments/{created['id']}", headers=user.headers).json()["status"] == "pending"

    ok = client.post(url, content=body, headers=headers)
    assert ok.status_code == 200 and ok.json()["status"] == "processed", ok.text
    replay = client.post(url, content=body, headers=headers)
    assert replay.json() == {
        "status": "duplicate",
        "event_id": "evt_fixed",
        "payment_id": created["id"],
        "outcome": "already received",
    }
    # Another event id for the same payment: the saga is idempotent too.
    other_body, other_headers = sandbox_webhook(created)
    assert client.post(url, content=other_body, headers=other_headers).json()["outcome"] == "already succeeded"
    assert len(events_of(platform, "payment.completed", user_id=user.id)) == 1
    assert client.post("/v1/payments/webhooks/paypal", content=body, headers=headers).status_code == 404
    assert client.post(url, content=b"x" * (1024 * 1024 + 1), headers=headers).status_code == 413
    ghost_body, ghost_headers = sandbox_webhook({"id": str(uuid4()), "client_secret": "sbx_x_secret"}, event_id="evt_g")
    assert error_code(client.post(url, content=ghost_body, headers=ghost_headers)) == "unknown_payment"
    with platform.sessions() as session:
        assert session.get(WebhookReceipt, ("sandbox", "evt_g")) is None  # not stored: the gateway will retry


@pytest.mark.security
def test_twenty_concurrent_duplicate_webhooks_activate_once(platform: Platform, client: TestClient) -> None:
    user = make_account(platform)
    created = pay(client, user.headers, "race", payment_method="pm_card_pending").json()
    body, headers = sandbox_webhook(created, event_id="evt_race")
    barrier = threading.Barrier(20)
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            with platform.sessions() as session:
                barrier.wait()
                outcomes.append(handle_webhook(session, gateway=SANDBOX, body=body, headers=headers).status)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(outcomes) == ["duplicate"] * 19 + ["processed"]
    assert len(events_of(platform, "payment.completed", user_id=user.id)) == 1
    assert len(events_of(platform, "subscription.activated", user_id=user.id)) == 1
    with platform.sessions() as session:
        sub = session.scalars(select(Subscription).where(Subscription.user_id == user.id)).one()
        assert sub.status == "active" and sub.last_payment_id == created["id"]
        assert sub.activated_at is not None and sub.current_period_end == sub.activated_at + timedelta(days=30)
        assert session.scalar(select(func.count()).select_from(WebhookReceipt)) == 1


@pytest.mark.security
def test_stripe_webhooks_verified_by_the_stripe_library(platform: Platform, client: TestClient) -> None:
    secret = "whsec_stripe_test_secret"
    live = platform.settings.model_copy(update={"payment_mode": "live", "stripe_webhook_secret": SecretStr(secret)})
    client.app.state.payment_gateways = build_gateways(live)  # type: ignore[attr-defined]
    user = make_account(platform)
    payments = []
    with platform.sessions() as session:
        for n in range(2):
            now = datetime.now(UTC)
            p = Payment(
                id=str(uuid4()),
                user_id=user.id,
                product_code="premium_monthly",
                amount_cents=999,
                currency="USD",
                region="US",
                gateway="stripe",
                external_id=f"pi_{n}",
                status="pending",
                created_at=now,
                updated_at=now,
            )

            def open_it(p: Payment = p) -> None:
                session.add(p)
                open_pending_subscription(session, user_id=user.id, plan_code="premium_monthly", payment_id=p.id)

            retry_write(session, open_it)
            payments.append(p.id)

    def event(kind: str, payment_id: str, external_id: str, **obj: object) -> bytes:
        return json.dumps(
            {
                "id": f"evt_{uuid4().hex}",
                "object": "event",
                "type": kind,
                "created": int(time.time()),
                "data": {
                    "object": {
                        "id": external_id,
                        "object": "payment_intent",
                        "metadata": {"fitrec_payment_id": payment_id},
                        **obj,
                    }
                },
            }
        ).encode()

    def signed(payload: bytes, key: str = secret) -> dict[str, str]:
        header = stripe.WebhookSignature.generate_signature_header(payload.decode(), key)
        return {"Stripe-Signature": header, "Content-Type": "application/json"}

    url = "/v1/payments/webhooks/stripe"
    failed = event(
        "payment_intent.payment_failed",
        payments[0],
        "pi_0",
        last_payment_error={"code": "card_declined", "message": "Your card was declined."},
    )
    assert client.post(url, content=failed, headers=signed(failed, "whsec_wrong")).status_code == 400
    assert client.post(url, content=failed, headers=signed(failed)).json()["outcome"] == "payment failed"
    succeeded = event("payment_intent.succeeded", payments[1], "pi_1")
    response = client.post(url, content=succeeded, headers=signed(succeeded))
    assert response.status_code == 200 and response.json()["outcome"] == "subscription activated", response.text
    ignored = event("charge.refund.updated", payments[1], "pi_1")
    assert client.post(url, content=ignored, headers=signed(ignored)).json()["status"] == "ignored"
    with platform.sessions() as session:
        assert session.get(Payment, payments[0]).failure_reason == "card_declined"  # type: ignore[union-attr]
        assert get_status(session, user_id=user.id).subscription_status == "active"
    # The sandbox is not a gateway of the live set-up.
    assert client.post("/v1/payments/webhooks/sandbox", content=b"{}").status_code == 404


class FakeGateway:
    def __init__(self, name: str, behaviour: str) -> None:
        self.name, self.behaviour, self.calls = name, behaviour, 0

    def create_payment(self, request: PaymentRequest) -> GatewayPayment:
        self.calls += 1
        if self.behaviour == "down":
            raise GatewayUnavailable(f"{self.name} is down")
        if self.behaviour == "decline":
            raise GatewayDeclined("insufficient funds")
        return GatewayPayment(external_id=f"{self.name}_{request.payment_id}", client_secret="cs")

    def parse_webhook(self, body: bytes, headers: object) -> object:
        raise NotImplementedError


@pytest.mark.parametrize("region", ["IN", "BR"])
def test_regions_route_with_fallback(platform: Platform, region: str) -> None:
    user = make_account(platform, region=region)
    regional, stripe_gw = FakeGateway("regional", "down"), FakeGateway("stripe", "ok")
    gateways = Gateways(by_name={"regional": regional, "stripe": stripe_gw}, sandbox=False)  # type: ignore[dict-item]
    with platform.sessions() as session:
        result = service.create_payment(
            session,
            user_id=user.id,
            region=region,
            idempotency_key="k",
            body=PaymentCreate(product_code="premium_yearly"),
            gateways=gateways,
        )
    assert (regional.calls, stripe_gw.calls) == (1, 1)
    assert result.body["gateway"] == "stripe" and result.body["status"] == "pending"
    assert result.body["currency"] == "USD" and result.body["amount_cents"] == 7999

    # Every gateway down: the payment fails (compensation and event), and the key replays that answer.
    stripe_gw.behaviour = "down"
    with platform.sessions() as session:
        down = service.create_payment(
            session,
            user_id=user.id,
            region=region,
            idempotency_key="k2",
            body=PaymentCreate(product_code="premium_monthly"),
            gateways=gateways,
        )
        assert down.body["status"] == "failed" and "no payment gateway available" in down.body["failure_reason"]
        assert get_status(session, user_id=user.id).subscription_status == "inactive"
        again = service.create_payment(
            session,
            user_id=user.id,
            region=region,
            idempotency_key="k2",
            body=PaymentCreate(product_code="premium_monthly"),
            gateways=gateways,
        )
        assert again.replayed and again.body == down.body
    assert len(events_of(platform, "payment.failed", user_id=user.id)) == 1

    # A decline is final: no fallback to the next gateway.
    regional.behaviour, calls_before = "decline", stripe_gw.calls
    with platform.sessions() as session:
        declined = service.create_payment(
            session,
            user_id=user.id,
            region=region,
            idempotency_key="k3",
            body=PaymentCreate(product_code="premium_monthly"),
            gateways=gateways,
        )
    assert declined.body["status"] == "failed" and declined.body["gateway"] == "regional"
    assert stripe_gw.calls == calls_before


@pytest.mark.security
def test_payment_ownership(platform: Platform, client: TestClient) -> None:
    owner, other, admin = make_account(platform), make_account(platform), make_account(platform, role="admin")
    created = pay(client, owner.headers, "own").json()
    response = client.get(f"/v1/payments/{created['id']}", headers=other.headers)
    assert response.status_code == 404 and error_code(response) == "not_found"
    assert client.get("/v1/payments", headers=other.headers).json()["count"] == 0
    assert client.get(f"/v1/payments/{created['id']}", headers=admin.headers).status_code == 200
