"""Scheduled health sync against a local fake of the Fitbit Web API (tokens that expire and rotate, a revoked
refresh token, a 500, a hang), and the daily activity summary through the outbox; both as the worker's jobs."""

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fake_fitbit import CLIENT_ID, CLIENT_SECRET, FakeFitbit, expected_day
from fastapi.testclient import TestClient
from sqlalchemy import select
from support import running_worker, serve_app
from test_platform_support import ENCRYPTION_KEY, Account, events_of, mailbox, make_account, make_app, make_settings

from platform_api.activity_summary import queue_summaries
from platform_api.email.dev import DevMailbox
from platform_api.health.crypto import TokenCipher
from platform_api.health.schemas import IntegrationCreate
from platform_api.health.service import link_integration, provider_tokens
from platform_api.health.sync import SyncReport, sync_health
from platform_api.health.tables import HealthIntegration, HealthMetricDay
from platform_api.job_runs import JobRun
from platform_api.outbox import OutboxMessage, relay_outbox
from platform_api.runtime import Platform, open_platform
from platform_api.workouts.tables import WorkoutSession

FIRST_DAYS = 3


@pytest.fixture
def fake() -> Iterator[tuple[FakeFitbit, str]]:
    server = FakeFitbit(hang_s=2.0)
    with serve_app(server.app()) as url:
        yield server, url


def open_with(db_url: str, tmp_path: Path, url: str) -> Platform:
    return open_platform(
        make_settings(
            db_url,
            tmp_path,
            fitbit_api_url=url,
            fitbit_client_id=CLIENT_ID,
            fitbit_client_secret=CLIENT_SECRET,
            health_sync_first_days=FIRST_DAYS,
            health_sync_timeout_s=1.0,
        )
    )


@pytest.fixture
def platform(tmp_path: Path, fake: tuple[FakeFitbit, str]) -> Iterator[Platform]:
    """SQLite (the embedded default); the first test also runs on PostgreSQL."""
    p = open_with(f"sqlite:///{tmp_path / 'platform.db'}", tmp_path, fake[1])
    yield p
    p.close()


def link(platform: Platform, account: Account, tokens: tuple[str, str], *, expires_at: datetime | None = None) -> str:
    with platform.sessions() as session:
        body = IntegrationCreate(
            provider="fitbit", access_token=tokens[0], refresh_token=tokens[1] or None, expires_at=expires_at
        )
        integration, _ = link_integration(session, user_id=account.id, body=body, cipher=TokenCipher(ENCRYPTION_KEY))
        return integration.id


def sync(platform: Platform) -> SyncReport:
    return sync_health(platform.sessions, settings=platform.settings)


def integration(platform: Platform, integration_id: str) -> HealthIntegration:
    with platform.sessions() as session:
        row = session.get(HealthIntegration, integration_id)
        assert row is not None
        return row


def days_of(platform: Platform, user_id: str) -> dict[date, dict[str, Any]]:
    with platform.sessions() as session:
        rows = session.scalars(select(HealthMetricDay).where(HealthMetricDay.user_id == user_id))
        return {
            r.day: {
                k: v
                for k, v in {
                    "steps": r.steps,
                    "active_minutes": r.active_minutes,
                    "resting_hr": r.resting_hr,
                    "sleep_minutes": r.sleep_minutes,
                }.items()
                if v is not None
            }
            for r in rows
            if r.source == "fitbit"
        }


def window() -> list[date]:
    today = datetime.now(UTC).date()
    return [today - timedelta(days=i) for i in reversed(range(FIRST_DAYS))]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sync_ingests_activity_sleep_and_heart_rate_once(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, fake: tuple[FakeFitbit, str]
) -> None:
    server, url = fake
    db_url = f"sqlite:///{tmp_path / 'p.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    platform = open_with(db_url, tmp_path, url)
    try:
        user = make_account(platform)
        integration_id = link(platform, user, server.grant("ann"), expires_at=datetime.now(UTC) + timedelta(hours=8))

        first = sync(platform)
        assert (first.integrations, first.synced, first.failed, first.revoked) == (1, 1, 0, 0)
        assert first.days == FIRST_DAYS and first.events == FIRST_DAYS
        assert days_of(platform, user.id) == {day: expected_day("ann", day) for day in window()}
        events = events_of(platform, "health_metric.synced", user_id=user.id)
        assert [e.properties["day"] for e in events] == [d.isoformat() for d in window()]
        today = window()[-1]
        stored = {k: v for k, v in events[-1].properties.items() if v is not None}
        assert stored == {"day": today.isoformat(), "source": "fitbit", **expected_day("ann", today)}
        assert server.refreshes == 0  # the token was valid
        assert len(server.of("ann")) == 3 * FIRST_DAYS  # activity, sleep, heart rate per day

        second = sync(platform)  # from the last synced day (today) on: unchanged values, no new events
        assert (second.synced, second.days, second.events) == (1, 1, 0)
        assert len(events_of(platform, "health_metric.synced", user_id=user.id)) == FIRST_DAYS
        row = integration(platform, integration_id)
        assert row.status == "active" and row.sync_error is None and row.sync_failures == 0
        assert row.last_synced_at is not None
    finally:
        platform.close()


def test_expired_access_token_is_refreshed_and_the_rotated_pair_stored_encrypted(
    platform: Platform, fake: tuple[FakeFitbit, str]
) -> None:
    server, _ = fake
    # One whose token is refused with 401 expired_token, one whose stored expiry says it is stale.
    refused, stale = make_account(platform), make_account(platform)
    refused_tokens, stale_tokens = server.grant("rita", expired=True), server.grant("sam", expired=True)
    refused_id = link(platform, refused, refused_tokens)
    stale_id = link(platform, stale, stale_tokens, expires_at=datetime.now(UTC) - timedelta(minutes=5))

    report = sync(platform)
    assert (report.synced, report.failed, report.revoked, report.events) == (2, 0, 0, 2 * FIRST_DAYS)
    assert server.refreshes == 2
    assert server.of("sam")[0] == "/oauth2/token"  # refreshed before any call
    assert server.of("rita")[:2] == ["/1/user/-/activities/date/" + window()[0].isoformat() + ".json", "/oauth2/token"]
    cipher = TokenCipher(ENCRYPTION_KEY)
    for integration_id, name, old in ((refused_id, "rita", refused_tokens), (stale_id, "sam", stale_tokens)):
        row = integration(platform, integration_id)
        access, refresh = provider_tokens(row, cipher)
        assert refresh is not None and row.refresh_token_enc is not None
        assert access != old[0] and server.access[access] == name and server.refresh[refresh] == name
        assert old[1] not in server.refresh  # used up: Fitbit's refresh tokens work once
        assert access.encode() not in row.access_token_enc and refresh.encode() not in row.refresh_token_enc
        assert row.token_expires_at is not None and row.token_expires_at > datetime.now(UTC) + timedelta(hours=7)
    # The stored pairs work: the next run refreshes nothing.
    again = sync(platform)
    assert again.synced == 2 and server.refreshes == 2


def test_revoked_refresh_token_marks_the_integration_and_stops_retrying(
    platform: Platform, fake: tuple[FakeFitbit, str]
) -> None:
    server, _ = fake
    gone, fine = make_account(platform), make_account(platform)
    gone_id = link(platform, gone, server.grant("gus", expired=True))
    link(platform, fine, server.grant("fay"))
    server.revoke("gus")
    # Linked without a refresh token, and the access token stopped working: nothing left to try.
    lone = make_account(platform)
    lone_id = link(platform, lone, (server.grant("lou", expired=True)[0], ""))

    report = sync(platform)
    assert (report.integrations, report.synced, report.revoked, report.failed) == (3, 1, 2, 0)
    row = integration(platform, gone_id)
    assert row.status == "revoked" and row.sync_error is not None and "invalid_grant" in row.sync_error
    lone_row = integration(platform, lone_id)
    assert lone_row.status == "revoked" and "no refresh token" in (lone_row.sync_error or "")
    assert days_of(platform, gone.id) == {} and len(days_of(platform, fine.id)) == FIRST_DAYS
    with TestClient(make_app(platform)) as client:
        listed = client.get("/v1/health/integrations", headers=gone.headers).json()["data"]
        assert listed[0]["status"] == "revoked" and "invalid_grant" in listed[0]["sync_error"]

        before = len(server.of("gus"))
        later = sync(platform)
        assert (later.integrations, later.revoked) == (1, 0)  # neither is even looked at
        assert len(server.of("gus")) == before

        # Linking again with new tokens resumes the sync.
        access, refresh = server.grant("gus")
        relinked = client.post(
            "/v1/health/integrations",
            json={"provider": "fitbit", "access_token": access, "refresh_token": refresh},
            headers=gone.headers,
        )
        assert relinked.status_code == 200 and relinked.json()["status"] == "active"
        assert relinked.json()["sync_error"] is None
    resumed = sync(platform)
    assert resumed.synced == 2 and len(days_of(platform, gone.id)) == FIRST_DAYS


def test_server_errors_and_timeouts_count_a_failure_and_the_next_run_retries(
    platform: Platform, fake: tuple[FakeFitbit, str]
) -> None:
    server, _ = fake
    broken, slow, fine = make_account(platform), make_account(platform), make_account(platform)
    broken_id = link(platform, broken, server.grant("bob"))
    slow_id = link(platform, slow, server.grant("sid"))
    link(platform, fine, server.grant("flo"))
    server.failing.add("bob")
    server.hanging.add("sid")

    started = time.monotonic()
    for run in (1, 2):
        report = sync(platform)
        assert (report.synced, report.failed, report.revoked) == (1, 2, 0)
        row = integration(platform, broken_id)
        assert row.status == "active" and row.sync_failures == run
        assert row.sync_error is not None and "HTTP 500" in row.sync_error
        hung = integration(platform, slow_id)
        assert hung.sync_failures == run and hung.sync_error is not None and "Timeout" in hung.sync_error
    assert time.monotonic() - started < 10  # the 1 s timeout, not the 2 s hang per call
    assert days_of(platform, broken.id) == {} and len(days_of(platform, fine.id)) == FIRST_DAYS

    server.failing.clear()
    server.hanging.clear()
    recovered = sync(platform)
    assert (recovered.synced, recovered.failed) == (3, 0)
    row = integration(platform, broken_id)
    assert row.sync_failures == 0 and row.sync_error is None
    assert days_of(platform, broken.id) == {day: expected_day("bob", day) for day in window()}


def add_workout(platform: Platform, account: Account, completed_at: datetime) -> None:
    with platform.sessions() as session:
        session.add(
            WorkoutSession(
                id=f"w-{account.id[:8]}-{completed_at:%d%H%M}",
                user_id=account.id,
                status="completed",
                source="free",
                started_at=completed_at - timedelta(minutes=40),
                completed_at=completed_at,
                duration_min=40.0,
                total_sets=12,
                total_reps=120,
                calories=310.0,
            )
        )
        session.commit()


def test_activity_summary_is_queued_once_per_user_and_day_and_sent_through_the_outbox(
    platform: Platform, fake: tuple[FakeFitbit, str]
) -> None:
    server, _ = fake
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    lifter, walker, idle = make_account(platform), make_account(platform), make_account(platform)
    add_workout(platform, lifter, datetime.combine(yesterday, datetime.min.time(), UTC) + timedelta(hours=18))
    add_workout(platform, idle, datetime.now(UTC) - timedelta(days=3))  # not yesterday
    link(platform, walker, server.grant("wes"))
    assert sync(platform).synced == 1

    with platform.sessions() as session:
        first = queue_summaries(session, day=yesterday)
    with platform.sessions() as session:
        again = queue_summaries(session, day=yesterday)
    assert (first.active_users, first.queued) == (2, 2)
    assert (again.active_users, again.queued) == (2, 0)
    with platform.sessions() as session:
        queued = session.scalars(select(OutboxMessage).where(OutboxMessage.dedupe_key.like("activity_summary:%")))
        assert sorted(m.user_id for m in queued) == sorted([lifter.id, walker.id])

    relayed = relay_outbox(platform.sessions, mailer=DevMailbox(platform.sessions, sender="fitrec <t@fitrec.test>"))
    assert relayed.sent == 2
    (lifted,) = mailbox(platform, lifter.email)
    assert "1 workout, 40 minutes, 310 kcal" in lifted.body
    (walked,) = mailbox(platform, walker.email)
    day = expected_day("wes", yesterday)
    assert f"{day['steps']:,} steps" in walked.body and f"resting heart rate {day['resting_hr']:.0f} bpm" in walked.body
    assert mailbox(platform, idle.email) == []
    assert relay_outbox(platform.sessions, mailer=DevMailbox(platform.sessions, sender="t@fitrec.test")).sent == 0


def test_the_worker_runs_health_sync_and_the_summary_on_schedule(
    tmp_path: Path, fake: tuple[FakeFitbit, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipelines.config import WorkerSettings
    from pipelines.jobs import scheduled_jobs

    server, url = fake
    for name, value in {
        "ENCRYPTION_KEY": ENCRYPTION_KEY,
        "FITBIT_API_URL": url,
        "FITBIT_CLIENT_ID": CLIENT_ID,
        "FITBIT_CLIENT_SECRET": CLIENT_SECRET,
        "HEALTH_SYNC_FIRST_DAYS": str(FIRST_DAYS),
    }.items():
        monkeypatch.setenv(f"FITREC_PLATFORM_{name}", value)
    platform = open_platform(WorkerSettings(FITREC_DATA_DIR=tmp_path, DATABASE_URL=None).platform())
    user = make_account(platform)
    link(platform, user, server.grant("wil", expired=True))

    every = "* * * * * *"
    crons = WorkerSettings(health_sync_cron=every, activity_summary_cron=every)
    jobs = {k: v for k, v in scheduled_jobs(crons).items() if k in ("health_sync", "activity_summary")}
    assert set(jobs) == {"health_sync", "activity_summary"}
    try:
        with running_worker(tmp_path, jobs=jobs, push_interval_s=0, served_load_s=0, email_relay_s=0.5):
            deadline = time.monotonic() + 30
            while not mailbox(platform, user.email):
                assert time.monotonic() < deadline, "no summary mail from the worker"
                time.sleep(0.2)
        with platform.sessions() as session:
            runs = list(session.scalars(select(JobRun).where(JobRun.finished_at.is_not(None))))
        assert runs and all(r.status == "ok" for r in runs), [r.detail for r in runs if r.status != "ok"]
        synced = [r.detail for r in runs if r.job == "health_sync" and r.detail and r.detail["synced"] == 1]
        assert synced and sum(r.detail["events"] for r in runs if r.job == "health_sync" and r.detail) == FIRST_DAYS
        assert any(r.detail and r.detail["queued"] == 1 for r in runs if r.job == "activity_summary")
        assert sum(r.detail["queued"] for r in runs if r.job == "activity_summary" and r.detail) == 1
        assert len(mailbox(platform, user.email)) == 1
    finally:
        platform.close()
