"""Entitlements on SQLite and PostgreSQL: 50 concurrent credit charges never overdraw and the ledger
adds up; idempotent charges; trials; subscription renewal and expiry."""

import re
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import test_platform_support as support
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from test_platform_support import error_code, make_account

from platform_api.entitlements import service
from platform_api.entitlements.tables import CreditAccount, CreditEntry
from platform_api.errors import ApiError
from platform_api.runtime import Platform
from platform_api.transactions import retry_write

# Fixtures shared by the platform tests.
client = support.client
platform = support.platform


@pytest.mark.security
def test_fifty_concurrent_charges_never_overdraw(platform: Platform) -> None:
    user = make_account(platform)
    with platform.sessions() as session:
        service.grant_credits(session, user_id=user.id, amount=30, idempotency_key="start")
    # 45 distinct charges and 5 retries of one more: 46 wanted, 30 affordable.
    keys = [f"charge-{i}" for i in range(45)] + ["retried"] * 5
    barrier = threading.Barrier(len(keys))
    results: dict[int, str] = {}
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def charge(n: int, key: str) -> None:
        with platform.sessions() as session:
            barrier.wait()
            start = time.perf_counter()
            try:
                _, created = service.charge_credits(session, user_id=user.id, amount=1, idempotency_key=key)
                outcome = "charged" if created else "replayed"
            except ApiError as exc:
                outcome = exc.code
            except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
                outcome = f"error: {exc!r}"
            with lock:
                results[n] = outcome
                spans.append((start, time.perf_counter()))

    threads = [threading.Thread(target=charge, args=(n, key)) for n, key in enumerate(keys)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    outcomes = list(results.values())
    assert not [o for o in outcomes if o.startswith("error")], outcomes
    assert outcomes.count("charged") == 30
    assert outcomes.count("charged") + outcomes.count("insufficient_credits") + outcomes.count("replayed") == 50
    # The transactions really overlapped in time: the database, not luck, kept them apart.
    spans.sort()
    assert any(later_start < earlier_end for (_, earlier_end), (later_start, _) in zip(spans, spans[1:], strict=False))
    with platform.sessions() as session:
        account = session.get(CreditAccount, user.id)
        entries = list(session.scalars(select(CreditEntry).where(CreditEntry.user_id == user.id)))
    assert account is not None and account.balance == 0
    assert sum(e.delta for e in entries) == account.balance
    charges = [e for e in entries if e.delta < 0]
    assert len(charges) == 30 and sum(e.idempotency_key == "retried" for e in charges) <= 1
    # Serialised: each charge saw its own balance, 29 down to 0, never below.
    assert sorted(e.balance_after for e in charges) == list(range(30))


@pytest.mark.security
def test_charges_are_idempotent_over_http(platform: Platform, client: TestClient) -> None:
    user, admin = make_account(platform), make_account(platform, role="admin")
    assert (
        client.post(
            "/v1/credits/grants", json={"user_id": user.id, "amount": 10, "idempotency_key": "g"}, headers=user.headers
        ).status_code
        == 403
    )
    grant = {"user_id": user.id, "amount": 10, "idempotency_key": "g"}
    assert client.post("/v1/credits/grants", json=grant, headers=admin.headers).status_code == 201
    assert client.post("/v1/credits/grants", json=grant, headers=admin.headers).status_code == 200
    assert (
        client.post("/v1/credits/grants", json={**grant, "user_id": "nobody"}, headers=admin.headers).status_code == 404
    )
    first = client.post("/v1/credits/charges", json={"amount": 4, "idempotency_key": "c1"}, headers=user.headers)
    again = client.post("/v1/credits/charges", json={"amount": 4, "idempotency_key": "c1"}, headers=user.headers)
    assert first.status_code == 201 and again.status_code == 200 and again.json() == first.json()
    assert first.json()["balance_after"] == 6
    other = client.post("/v1/credits/charges", json={"amount": 5, "idempotency_key": "c1"}, headers=user.headers)
    assert other.status_code == 409 and error_code(other) == "idempotency_conflict"
    short = client.post("/v1/credits/charges", json={"amount": 7, "idempotency_key": "c2"}, headers=user.headers)
    assert short.status_code == 402 and error_code(short) == "insufficient_credits"
    assert (
        client.post(
            "/v1/credits/charges", json={"amount": 0, "idempotency_key": "c3"}, headers=user.headers
        ).status_code
        == 422
    )
    for n in range(5):
        client.post("/v1/credits/charges", json={"amount": 1, "idempotency_key": f"p{n}"}, headers=user.headers)
    page = client.get("/v1/credits/entries", params={"limit": 4}, headers=user.headers).json()
    rest = client.get(
        "/v1/credits/entries", params={"limit": 4, "cursor": page["next_cursor"]}, headers=user.headers
    ).json()
    assert page["count"] == 7 and len(page["data"]) == 4 and len(rest["data"]) == 3 and rest["next_cursor"] is None
    assert {e["id"] for e in page["data"]}.isdisjoint({e["id"] for e in rest["data"]})
    assert client.get("/v1/entitlements/me", headers=user.headers).json()["credits"] == 1
    assert client.get("/v1/credits/entries", headers=admin.headers).json()["count"] == 0  # the admin's own ledger


def test_trial_once(platform: Platform, client: TestClient) -> None:
    user = make_account(platform)
    assert client.get("/v1/entitlements/me", headers=user.headers).json()["premium"] is False
    trial = client.post("/v1/entitlements/trial", headers=user.headers)
    assert trial.status_code == 201
    ends = datetime.fromisoformat(trial.json()["ends_at"])
    assert abs(ends - datetime.now(UTC) - timedelta(days=14)) < timedelta(minutes=5)
    me = client.get("/v1/entitlements/me", headers=user.headers).json()
    assert me["premium"] and me["trial_active"]
    with platform.sessions() as session:
        assert service.premium_catalogue_access(session, user_id=user.id) == (True, set())
        later = datetime.now(UTC) + timedelta(days=15)
        assert service.premium_catalogue_access(session, user_id=user.id, now=later) == (False, set())
    assert error_code(client.post("/v1/entitlements/trial", headers=user.headers)) == "trial_used"


def test_subscription_renewal_and_expiry(platform: Platform) -> None:
    user = make_account(platform)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    month = timedelta(days=30)
    with platform.sessions() as session:

        def activate(payment_id: str, at: datetime) -> tuple[object, bool]:
            return retry_write(
                session,
                lambda: service.activate_subscription(
                    session, user_id=user.id, plan_code="premium_monthly", payment_id=payment_id, period=month, now=at
                ),
            )

        sub, applied = activate("p1", t0)
        assert applied and sub.current_period_end == t0 + month  # type: ignore[attr-defined]
        _, applied = activate("p1", t0 + timedelta(days=1))
        assert not applied  # the same payment never extends twice
        sub, _ = activate("p2", t0 + timedelta(days=20))  # renewal before the end extends from the end
        assert sub.current_period_end == t0 + 2 * month  # type: ignore[attr-defined]
        assert service.get_status(session, user_id=user.id, now=t0 + timedelta(days=59)).premium
        late = service.get_status(session, user_id=user.id, now=t0 + timedelta(days=61))
        assert late.subscription_status == "expired" and not late.premium
        # The ranking path's two-query verdict agrees with the full status on either side of the end.
        for day in (59, 61):
            at = t0 + timedelta(days=day)
            premium, _ = service.premium_catalogue_access(session, user_id=user.id, now=at)
            assert premium == service.get_status(session, user_id=user.id, now=at).premium
        sub, _ = activate("p3", t0 + timedelta(days=90))  # after expiry a new period starts at payment
        assert sub.current_period_end == t0 + timedelta(days=90) + month  # type: ignore[attr-defined]
        assert session.scalar(select(func.count()).select_from(CreditEntry)) == 0


PLATFORM_TABLES = {
    "trainer_profile",
    "plan_enrollment",
    "workout_session",
    "workout_set",
    "achievement",
    "health_integration",
    "health_metric_day",
    "trial",
    "subscription",
    "credit_account",
    "credit_entry",
    "payment",
    "idempotency_record",
    "webhook_receipt",
    "outbox_message",
    "content_item",
    "workout_plan",
}


def test_migration_0003_matches_the_models(platform: Platform) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from platform_api.db import Base
    from platform_api.tables import load_all_tables

    load_all_tables()
    with platform.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        tables = set(conn.dialect.get_table_names(conn))
    ours = [d for d in diffs if PLATFORM_TABLES & set(re.findall(r"'(\w+)'", repr(d)))]
    assert ours == []
    assert tables >= PLATFORM_TABLES
