"""Entitlements: trials, subscriptions (changed by the payment saga) and the credits ledger.

Credits are a ledger (`credit_entry`) plus a running balance (`credit_account`) updated in
the same transaction. A charge locks the account row (PostgreSQL `SELECT ... FOR UPDATE`;
SQLite: the write lock taken by `BEGIN IMMEDIATE`), so concurrent charges serialise and
the balance can never go below zero; a CHECK constraint backs that up. Each entry has an
idempotency key: the same key twice gives the first entry back and moves nothing.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from platform_api.entitlements.tables import CreditAccount, CreditEntry, Subscription, Trial
from platform_api.errors import ApiError
from platform_api.outbox import emit_event
from platform_api.transactions import for_update, retry_write

# What unlocking one premium item costs without a subscription or trial.
UNLOCK_COST_CREDITS = 5


@dataclass(frozen=True)
class EntitlementStatus:
    trial_ends_at: datetime | None
    trial_active: bool
    subscription_status: str | None  # pending | active | inactive | expired
    subscription_plan: str | None
    renews_at: datetime | None
    credits: int
    premium: bool  # trial or subscription: every premium item without spending credits


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def subscription_state(sub: Subscription | None, now: datetime) -> str | None:
    if sub is None:
        return None
    if sub.status == "active" and (sub.current_period_end is None or sub.current_period_end <= now):
        return "expired"
    return sub.status


def get_status(session: Session, *, user_id: str, now: datetime | None = None) -> EntitlementStatus:
    now = _now(now)
    trial = session.get(Trial, user_id)
    sub = session.scalars(select(Subscription).where(Subscription.user_id == user_id)).one_or_none()
    account = session.get(CreditAccount, user_id)
    trial_active = trial is not None and trial.started_at <= now < trial.ends_at
    state = subscription_state(sub, now)
    return EntitlementStatus(
        trial_ends_at=trial.ends_at if trial else None,
        trial_active=trial_active,
        subscription_status=state,
        subscription_plan=sub.plan_code if sub else None,
        renews_at=sub.current_period_end if sub and state == "active" else None,
        credits=account.balance if account else 0,
        premium=trial_active or state == "active",
    )


def premium_access(session: Session, *, user_id: str, item_id: str, now: datetime | None = None) -> str | None:
    """How the user may open a premium item: "subscription", "trial", "credits" (unlocked), or None."""
    status = get_status(session, user_id=user_id, now=now)
    if status.subscription_status == "active":
        return "subscription"
    if status.trial_active:
        return "trial"
    unlocked = session.scalar(
        select(func.count())
        .select_from(CreditEntry)
        .where(CreditEntry.user_id == user_id, CreditEntry.reason == "unlock", CreditEntry.ref == item_id)
    )
    return "credits" if unlocked else None


def premium_catalogue_access(session: Session, *, user_id: str, now: datetime | None = None) -> tuple[bool, set[str]]:
    """(whether every premium item is open: an active trial or subscription, the items unlocked with credits).

    The same verdict as `get_status(...).premium` in two queries instead of four: the ranking path asks it
    on every uncached recommendation.
    """
    now = _now(now)

    def one(column: Any, table: Any) -> Any:
        return select(column).where(table.user_id == user_id).scalar_subquery()

    row = session.execute(
        select(
            one(Trial.started_at, Trial),
            one(Trial.ends_at, Trial),
            one(Subscription.status, Subscription),
            one(Subscription.current_period_end, Subscription),
        )
    ).one()
    started, ends, status, period_end = row
    trial = started is not None and ends is not None and _aware(started) <= now < _aware(ends)
    subscribed = status == "active" and period_end is not None and _aware(period_end) > now
    unlocked = session.scalars(
        select(CreditEntry.ref).where(CreditEntry.user_id == user_id, CreditEntry.reason == "unlock")
    ).all()
    return trial or subscribed, {ref for ref in unlocked if ref}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def require_premium(session: Session, *, user_id: str, item_id: str) -> str:
    via = premium_access(session, user_id=user_id, item_id=item_id)
    if via is None:
        raise ApiError(
            403,
            f"premium content: start a trial, subscribe, or unlock it for {UNLOCK_COST_CREDITS} credits",
            code="entitlement_required",
        )
    return via


# --- trial ---


def start_trial(session: Session, *, user_id: str, days: int, now: datetime | None = None) -> Trial:
    """Start the user's one free trial; 409 if they ever had one."""
    now = _now(now)
    if session.get(Trial, user_id) is not None:
        raise ApiError(409, "the free trial was already used", code="trial_used")
    trial = Trial(user_id=user_id, started_at=now, ends_at=now + timedelta(days=days))
    session.add(trial)
    # Premium items open at once: the event tells serving to drop the user's cached slates.
    emit_event(
        session,
        key=f"trial.started:{user_id}",
        event_type="trial.started",
        user_id=user_id,
        occurred_at=now,
        properties={"ends_at": trial.ends_at},
    )
    try:
        session.commit()
    except Exception as exc:
        session.rollback()
        if session.get(Trial, user_id) is not None:  # a concurrent request started it first
            raise ApiError(409, "the free trial was already used", code="trial_used") from exc
        raise
    return trial


# --- subscriptions (steps of the payment saga: in the caller's transaction, each idempotent) ---


def _subscription_for_update(session: Session, user_id: str) -> Subscription | None:
    query = select(Subscription).where(Subscription.user_id == user_id)
    if for_update(session):
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def open_pending_subscription(
    session: Session, *, user_id: str, plan_code: str, payment_id: str, now: datetime | None = None
) -> Subscription:
    """Record that a payment for `plan_code` is under way; an active subscription stays active."""
    now = _now(now)
    sub = _subscription_for_update(session, user_id)
    if sub is None:
        sub = Subscription(id=str(uuid4()), user_id=user_id, plan_code=plan_code, status="pending", updated_at=now)
        session.add(sub)
    elif subscription_state(sub, now) != "active":
        sub.status = "pending"
        sub.plan_code = plan_code
    sub.pending_payment_id = payment_id
    sub.updated_at = now
    session.flush()
    return sub


def activate_subscription(
    session: Session, *, user_id: str, plan_code: str, payment_id: str, period: timedelta, now: datetime | None = None
) -> tuple[Subscription, bool]:
    """Apply one paid period; (subscription, False) if this payment's period was already applied."""
    now = _now(now)
    sub = _subscription_for_update(session, user_id)
    if sub is None:
        sub = Subscription(id=str(uuid4()), user_id=user_id, plan_code=plan_code, status="pending", updated_at=now)
        session.add(sub)
    elif sub.last_payment_id == payment_id:
        return sub, False
    # Renewal extends from the end of a running period; otherwise the period starts now.
    running = subscription_state(sub, now) == "active" and sub.current_period_end is not None
    start = sub.current_period_end if running and sub.current_period_end else now
    sub.status = "active"
    sub.plan_code = plan_code
    sub.current_period_end = start + period
    sub.last_payment_id = payment_id
    if sub.pending_payment_id == payment_id:
        sub.pending_payment_id = None
    sub.activated_at = sub.activated_at if running else now
    sub.updated_at = now
    session.flush()
    return sub, True


def abandon_pending_subscription(
    session: Session, *, user_id: str, payment_id: str, now: datetime | None = None
) -> Subscription | None:
    """Compensation for a failed payment: the subscription it was opening goes back to not active."""
    now = _now(now)
    sub = _subscription_for_update(session, user_id)
    if sub is None or sub.pending_payment_id != payment_id:
        return sub
    sub.pending_payment_id = None
    if sub.status == "pending":
        sub.status = "inactive"
    sub.updated_at = now
    session.flush()
    return sub


# --- credits ---


def _account_for_update(session: Session, user_id: str, now: datetime) -> CreditAccount:
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(CreditAccount)
        .values(user_id=user_id, balance=0, updated_at=now)
        .on_conflict_do_nothing(index_elements=["user_id"])
    )
    query = select(CreditAccount).where(CreditAccount.user_id == user_id).execution_options(populate_existing=True)
    if for_update(session):
        query = query.with_for_update()
    return session.scalars(query).one()


def apply_credit(
    session: Session,
    *,
    user_id: str,
    delta: int,
    reason: str,
    idempotency_key: str,
    ref: str | None = None,
    now: datetime | None = None,
) -> tuple[CreditEntry, bool]:
    """Move credits in the caller's (write) transaction; (entry, False) when the key was used before."""
    if delta == 0:
        raise ApiError(422, "a credit entry moves at least one credit")
    now = _now(now)
    account = _account_for_update(session, user_id, now)  # the lock: everything below is serialised per user
    existing = session.scalars(
        select(CreditEntry).where(CreditEntry.user_id == user_id, CreditEntry.idempotency_key == idempotency_key)
    ).one_or_none()
    if existing is not None:
        if existing.delta != delta or existing.reason != reason or existing.ref != ref:
            raise ApiError(
                409, "this idempotency key was used for a different credit entry", code="idempotency_conflict"
            )
        return existing, False
    if account.balance + delta < 0:
        raise ApiError(
            402, f"not enough credits: balance {account.balance}, needed {-delta}", code="insufficient_credits"
        )
    account.balance += delta
    account.updated_at = now
    entry = CreditEntry(
        id=str(uuid4()),
        user_id=user_id,
        delta=delta,
        balance_after=account.balance,
        reason=reason,
        ref=ref,
        idempotency_key=idempotency_key,
        created_at=now,
    )
    session.add(entry)
    session.flush()
    return entry, True


def charge_credits(
    session: Session,
    *,
    user_id: str,
    amount: int,
    idempotency_key: str,
    reason: str = "charge",
    ref: str | None = None,
) -> tuple[CreditEntry, bool]:
    """Spend credits, committed; retried on lock/serialization failures. 402 when the balance is short."""
    if amount <= 0:
        raise ApiError(422, "amount must be positive")
    return retry_write(
        session,
        lambda: apply_credit(
            session, user_id=user_id, delta=-amount, reason=reason, idempotency_key=idempotency_key, ref=ref
        ),
    )


def grant_credits(
    session: Session,
    *,
    user_id: str,
    amount: int,
    idempotency_key: str,
    reason: str = "grant",
    ref: str | None = None,
) -> tuple[CreditEntry, bool]:
    """Add credits (an admin grant or a purchase), committed and idempotent by key."""
    if amount <= 0:
        raise ApiError(422, "amount must be positive")
    return retry_write(
        session,
        lambda: apply_credit(
            session, user_id=user_id, delta=amount, reason=reason, idempotency_key=idempotency_key, ref=ref
        ),
    )


def unlock_item(session: Session, *, user_id: str, item_id: str) -> tuple[CreditEntry, bool]:
    """Unlock one premium item with credits, once: unlocking it again charges nothing."""
    entry, charged = charge_credits(
        session,
        user_id=user_id,
        amount=UNLOCK_COST_CREDITS,
        idempotency_key=f"unlock:{item_id}",
        reason="unlock",
        ref=item_id,
    )
    if charged:
        # After the charge's own transaction (charge_credits commits): at worst the event is lost and a cached
        # slate shows the item a few minutes late; the deterministic id stores it once.
        emit_event(
            session,
            key=f"item.unlocked:{user_id}:{item_id}",
            event_type="item.unlocked",
            user_id=user_id,
            item_id=item_id,
            occurred_at=entry.created_at,
            properties={"credits": UNLOCK_COST_CREDITS},
        )
        session.commit()
    return entry, charged


def list_entries(
    session: Session, *, user_id: str, limit: int, after: tuple[str, str] | None = None
) -> tuple[list[CreditEntry], int]:
    """Newest first, keyset-paginated by (created_at, id); with the total count."""
    query = select(CreditEntry).where(CreditEntry.user_id == user_id)
    if after is not None:
        created, entry_id = after
        at = datetime.fromisoformat(created)
        query = query.where(
            (CreditEntry.created_at < at) | ((CreditEntry.created_at == at) & (CreditEntry.id < entry_id))
        )
    rows = session.scalars(query.order_by(CreditEntry.created_at.desc(), CreditEntry.id.desc()).limit(limit)).all()
    total = session.scalar(select(func.count()).select_from(CreditEntry).where(CreditEntry.user_id == user_id)) or 0
    return list(rows), total
