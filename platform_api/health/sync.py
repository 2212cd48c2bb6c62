"""Scheduled pull of linked health providers (the worker's `health_sync` job).

Each active Fitbit integration is pulled from the day of its last sync (that day again: it may have been
partial) or `health_sync_first_days` back, to today, at most MAX_DAYS days a run. The days go through
`service.store_days`, the path of the API's own sync: checked against the event contract (a day out of
range is left out and counted), merged into the metric rows, one `health_metric.synced` per changed day
with an id derived from its values, so pulling a day again stores and emits nothing.

Tokens: an access token known to be expired, or refused with a 401, is refreshed once and the call
retried; the rotated pair is stored encrypted at once (Fitbit's refresh tokens are single-use). A refused
refresh token marks the integration `revoked`, and it is not pulled again until the user links it anew.
Anything else (5xx, 429, timeouts, unreadable answers) counts a failure, records it, and the next run
tries again. Each integration is its own unit: one failing never stops the others.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from platform_api.config import PlatformSettings
from platform_api.health.crypto import TokenCipher
from platform_api.health.fitbit_api import AccessDenied, FitbitApi, ProviderError, Revoked, Tokens
from platform_api.health.service import DayKey, check_day, provider_tokens, store_days
from platform_api.health.tables import HealthIntegration

log = logging.getLogger(__name__)
PROVIDER = "fitbit"
MAX_DAYS = 30  # Fitbit allows 150 calls an hour per user; a day is 3 calls
EXPIRY_MARGIN = timedelta(minutes=1)


@dataclass
class SyncReport:
    integrations: int = 0  # active Fitbit integrations found
    synced: int = 0
    revoked: int = 0
    failed: int = 0
    days: int = 0  # days pulled from providers
    events: int = 0  # health_metric.synced events ingested (days whose values changed)
    rejected_days: int = 0  # days outside the event contract, not stored

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


def open_fitbit(settings: PlatformSettings) -> FitbitApi:
    return FitbitApi(
        base_url=settings.fitbit_api_url,
        client_id=settings.fitbit_client_id,
        client_secret=settings.fitbit_client_secret.get_secret_value(),
        timeout_s=settings.health_sync_timeout_s,
    )


def sync_health(
    sessions: sessionmaker[Session],
    *,
    settings: PlatformSettings,
    api: FitbitApi | None = None,
    now: datetime | None = None,
) -> SyncReport:
    """Pull every active Fitbit integration once; what happened to each is stored on its row."""
    now = now or datetime.now(UTC)
    cipher = TokenCipher(settings.encryption_key.get_secret_value())
    report = SyncReport()
    with sessions() as session:
        ids = list(
            session.scalars(
                select(HealthIntegration.id)
                .where(HealthIntegration.provider == PROVIDER, HealthIntegration.status == "active")
                .order_by(HealthIntegration.id)
            )
        )
    report.integrations = len(ids)
    client = api or open_fitbit(settings)
    try:
        for integration_id in ids:
            _sync_one(
                sessions,
                integration_id,
                api=client,
                cipher=cipher,
                now=now,
                first_days=settings.health_sync_first_days,
                report=report,
            )
    finally:
        if api is None:
            client.close()
    return report


def _days(last_synced_at: datetime | None, today: date, first_days: int) -> list[date]:
    start = last_synced_at.date() if last_synced_at else today - timedelta(days=first_days - 1)
    start = max(start, today - timedelta(days=MAX_DAYS - 1))
    return [start + timedelta(days=i) for i in range((today - start).days + 1)]


def _sync_one(
    sessions: sessionmaker[Session],
    integration_id: str,
    *,
    api: FitbitApi,
    cipher: TokenCipher,
    now: datetime,
    first_days: int,
    report: SyncReport,
) -> None:
    with sessions() as session:
        integration = session.get(HealthIntegration, integration_id)
        if integration is None or integration.status != "active":
            return
        user_id = integration.user_id
        access, refresh = provider_tokens(integration, cipher)
        expires_at = integration.token_expires_at
        days = _days(integration.last_synced_at, now.date(), first_days)
    link = _Link(sessions, integration_id, cipher, api, access, refresh)
    try:
        if refresh and expires_at is not None and expires_at <= now + EXPIRY_MARGIN:
            link.refresh(now)  # known to be stale: spare the refused call
        pulled = {(user_id, day): link.day(day, now) for day in days}
    except Revoked as exc:
        report.revoked += 1
        _record(sessions, integration_id, status="revoked", error=str(exc))
        log.warning("health integration %s revoked: %s", integration_id, exc)
        return
    except Exception as exc:  # noqa: BLE001 - provider errors and bugs alike: recorded, retried next run
        report.failed += 1
        _record(sessions, integration_id, error=f"{type(exc).__name__}: {exc}"[:2000], failed=True)
        if not isinstance(exc, ProviderError):
            log.exception("health sync of integration %s failed", integration_id)
        return
    kept: dict[DayKey, dict[str, Any]] = {}
    for (uid, day), values in pulled.items():
        reason = check_day(values, day) if values else None
        if reason:
            report.rejected_days += 1
            log.warning("health integration %s: %s left out: %s", integration_id, day, reason)
        elif values:
            kept[(uid, day)] = values
    with sessions() as session:
        integration = session.get(HealthIntegration, integration_id)
        if integration is None:  # unlinked meanwhile
            return
        stored = store_days(session, source=PROVIDER, days=kept, now=now)
        integration.last_synced_at = now
        integration.sync_error, integration.sync_failures = None, 0
        session.commit()
    report.synced += 1
    report.days += len(days)
    report.events += stored.changed


class _Link:
    """The tokens of one integration during a run: refreshed at most once per call, stored as soon as rotated."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        integration_id: str,
        cipher: TokenCipher,
        api: FitbitApi,
        access: str,
        refresh_token: str | None,
    ) -> None:
        self._sessions, self._id, self._cipher, self._api = sessions, integration_id, cipher, api
        self.access, self._refresh_token = access, refresh_token

    def refresh(self, now: datetime) -> None:
        if not self._refresh_token:
            raise Revoked("the access token was refused and there is no refresh token: link again")
        tokens = self._api.refresh(self._refresh_token, now=now)
        self._store(tokens)
        self.access, self._refresh_token = tokens.access_token, tokens.refresh_token

    def day(self, day: date, now: datetime) -> dict[str, Any]:
        try:
            return self._api.day(self.access, day)
        except AccessDenied:
            self.refresh(now)
            return self._api.day(self.access, day)  # refused again: a failure, tried next run

    def _store(self, tokens: Tokens) -> None:
        with self._sessions() as session:
            integration = session.get(HealthIntegration, self._id)
            if integration is None:
                return
            integration.access_token_enc = self._cipher.encrypt(tokens.access_token)
            integration.refresh_token_enc = self._cipher.encrypt(tokens.refresh_token)
            integration.token_expires_at = tokens.expires_at
            session.commit()


def _record(
    sessions: sessionmaker[Session], integration_id: str, *, error: str, status: str | None = None, failed: bool = False
) -> None:
    with sessions() as session:
        integration = session.get(HealthIntegration, integration_id)
        if integration is None:
            return
        integration.sync_error = error
        if status:
            integration.status = status
        if failed:
            integration.sync_failures += 1
        session.commit()
