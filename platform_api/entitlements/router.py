"""Entitlements over HTTP: what the caller may open, the free trial, the credits ledger."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from platform_api.auth.tables import User
from platform_api.deps import AdminUser, CurrentUser, PlatformDep, SessionDep
from platform_api.entitlements import service
from platform_api.entitlements.schemas import (
    CreditChargeCreate,
    CreditEntriesPublic,
    CreditEntryPublic,
    CreditGrantCreate,
    EntitlementsPublic,
    TrialPublic,
)
from platform_api.entitlements.tables import CreditEntry
from platform_api.errors import ERROR_SCHEMA, ApiError
from platform_api.pagination import Cursor, decode_cursor, encode_cursor

router = APIRouter(prefix="/v1", tags=["entitlements"])
REPLAYED = "this idempotency key was used before: the entry it made"


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error responses a route documents, each in the one error shape."""
    return {code: ERROR_SCHEMA for code in codes}


def entry_public(entry: CreditEntry) -> CreditEntryPublic:
    return CreditEntryPublic(
        id=entry.id,
        delta=entry.delta,
        balance_after=entry.balance_after,
        reason=entry.reason,
        ref=entry.ref,
        idempotency_key=entry.idempotency_key,
        created_at=entry.created_at,
    )


@router.get("/entitlements/me", response_model=EntitlementsPublic, responses=errors(401))
def my_entitlements(user: CurrentUser, session: SessionDep) -> EntitlementsPublic:
    """Show the caller's trial, subscription and credit balance."""
    s = service.get_status(session, user_id=user.id)
    return EntitlementsPublic(
        premium=s.premium,
        trial_active=s.trial_active,
        trial_ends_at=s.trial_ends_at,
        subscription_status=s.subscription_status,
        subscription_plan=s.subscription_plan,
        renews_at=s.renews_at,
        credits=s.credits,
    )


@router.post("/entitlements/trial", status_code=201, response_model=TrialPublic, responses=errors(401, 409))
def start_trial(user: CurrentUser, session: SessionDep, platform: PlatformDep) -> TrialPublic:
    """Start the caller's one free trial of premium content (409 if it was used)."""
    trial = service.start_trial(session, user_id=user.id, days=platform.settings.trial_days)
    return TrialPublic(started_at=trial.started_at, ends_at=trial.ends_at)


@router.get("/credits/entries", response_model=CreditEntriesPublic, responses=errors(400, 401, 422))
def list_credit_entries(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Cursor = None,
) -> CreditEntriesPublic:
    """List the caller's credit ledger, newest first."""
    after = decode_cursor(cursor, size=2)
    rows, count = service.list_entries(
        session, user_id=user.id, limit=limit, after=(str(after[0]), str(after[1])) if after else None
    )
    next_cursor = encode_cursor([rows[-1].created_at.isoformat(), rows[-1].id]) if len(rows) == limit else None
    return CreditEntriesPublic(data=[entry_public(e) for e in rows], count=count, next_cursor=next_cursor)


@router.post(
    "/credits/charges",
    status_code=201,
    response_model=CreditEntryPublic,
    responses={**errors(401, 402, 409, 422), 200: {"model": CreditEntryPublic, "description": REPLAYED}},
)
def charge_credits(
    body: CreditChargeCreate, user: CurrentUser, session: SessionDep, response: Response
) -> CreditEntryPublic:
    """Spend the caller's credits (402 when short); the same idempotency key never charges twice."""
    entry, created = service.charge_credits(
        session, user_id=user.id, amount=body.amount, idempotency_key=body.idempotency_key, ref=body.ref
    )
    if not created:
        response.status_code = 200
    return entry_public(entry)


@router.post(
    "/credits/grants",
    status_code=201,
    response_model=CreditEntryPublic,
    responses={**errors(401, 403, 404, 409, 422), 200: {"model": CreditEntryPublic, "description": REPLAYED}},
)
def grant_credits(
    body: CreditGrantCreate, admin: AdminUser, session: SessionDep, response: Response
) -> CreditEntryPublic:
    """Give a user credits (admins); the same idempotency key never grants twice."""
    if session.get(User, body.user_id) is None:
        raise ApiError(404, "user not found")
    entry, created = service.grant_credits(
        session, user_id=body.user_id, amount=body.amount, idempotency_key=body.idempotency_key
    )
    if not created:
        response.status_code = 200
    return entry_public(entry)
