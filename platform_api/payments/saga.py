"""What a confirmed or failed payment sets in motion.

Success: payment succeeded → subscription active with its renewal date (or credits added)
→ access granted (the entitlement reads the subscription) → `payment.completed`,
`subscription.activated` → confirmation email (outbox). Failure compensates: the pending
subscription goes back to not active, `payment.failed`.

All steps run in the webhook's one transaction with the payment row locked, so a crash
leaves either all of them or none; each step is also idempotent on its own (status checks,
the subscription remembers the payment it applied, credit and email keys, deterministic
event ids), so re-running the saga for the same payment changes nothing.
"""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from platform_api.entitlements.service import abandon_pending_subscription, activate_subscription, apply_credit
from platform_api.outbox import emit_event, enqueue_email
from platform_api.payments.products import PRODUCTS
from platform_api.payments.tables import Payment
from platform_api.transactions import for_update


def lock_payment(session: Session, payment_id: str) -> Payment | None:
    query = select(Payment).where(Payment.id == payment_id).execution_options(populate_existing=True)
    if for_update(session):
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def _payment_props(payment: Payment, reason: str | None = None) -> dict[str, object]:
    return {
        "payment_id": payment.id,
        "amount_cents": payment.amount_cents,
        "currency": payment.currency,
        "gateway": payment.gateway or "none",
        "reason": reason,
    }


def complete_payment(session: Session, *, payment: Payment, now: datetime) -> str:
    """Run the success saga for a locked payment; returns what happened."""
    if payment.status == "succeeded":
        return "already succeeded"
    product = PRODUCTS[payment.product_code]
    payment.status = "succeeded"
    payment.failure_reason = None
    payment.updated_at = now
    emit_event(
        session,
        key=f"payment.completed:{payment.id}",
        event_type="payment.completed",
        user_id=payment.user_id,
        occurred_at=now,
        properties=_payment_props(payment),
    )
    if product.kind == "subscription":
        assert product.period is not None
        sub, applied = activate_subscription(
            session,
            user_id=payment.user_id,
            plan_code=product.code,
            payment_id=payment.id,
            period=product.period,
            now=now,
        )
        emit_event(
            session,
            key=f"subscription.activated:{payment.id}",
            event_type="subscription.activated",
            user_id=payment.user_id,
            occurred_at=now,
            properties={"subscription_id": sub.id, "plan_code": product.code, "renews_at": sub.current_period_end},
        )
        renews = sub.current_period_end.date().isoformat() if sub.current_period_end else "-"
        enqueue_email(
            session,
            user_id=payment.user_id,
            dedupe_key=f"payment.completed:{payment.id}",
            subject="Your fitrec Premium is active",
            body=f"Thank you! {product.title} is active until {renews}; it renews then.\n"
            f"Amount: {payment.amount_cents / 100:.2f} {payment.currency}.",
        )
        return "subscription activated" if applied else "subscription already applied"
    apply_credit(
        session,
        user_id=payment.user_id,
        delta=product.credits,
        reason="purchase",
        idempotency_key=f"purchase:{payment.id}",
        ref=payment.id,
        now=now,
    )
    enqueue_email(
        session,
        user_id=payment.user_id,
        dedupe_key=f"payment.completed:{payment.id}",
        subject="Your fitrec credits are here",
        body=f"{product.credits} credits were added to your account.\n"
        f"Amount: {payment.amount_cents / 100:.2f} {payment.currency}.",
    )
    return "credits added"


def fail_payment(session: Session, *, payment: Payment, reason: str | None, now: datetime) -> str:
    """Run the compensation for a locked payment; a payment that already succeeded is left alone."""
    if payment.status == "succeeded":
        return "ignored: payment already succeeded"
    if payment.status == "failed":
        return "already failed"
    payment.status = "failed"
    payment.failure_reason = (reason or "failed")[:200]
    payment.updated_at = now
    if PRODUCTS[payment.product_code].kind == "subscription":
        abandon_pending_subscription(session, user_id=payment.user_id, payment_id=payment.id, now=now)
    emit_event(
        session,
        key=f"payment.failed:{payment.id}",
        event_type="payment.failed",
        user_id=payment.user_id,
        occurred_at=now,
        properties=_payment_props(payment, payment.failure_reason),
    )
    enqueue_email(
        session,
        user_id=payment.user_id,
        dedupe_key=f"payment.failed:{payment.id}",
        subject="Your fitrec payment did not go through",
        body=f"The payment for {PRODUCTS[payment.product_code].title} failed ({payment.failure_reason}). "
        "Nothing was charged; you can try again with another payment method.",
    )
    return "payment failed"
