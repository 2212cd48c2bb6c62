"""Health integrations and daily metrics: link, sync with unit normalisation, read back.

A day's metrics from one source are one row; a sync merges the values it brings into it
(values it does not bring stay). Each day whose values changed gets one
`health_metric.synced` event, in the same transaction, with an id derived from the values:
syncing the same data again changes nothing and emits nothing.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from uuid import uuid4

from pydantic import ValidationError
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from platform_api.errors import ApiError
from platform_api.events.ingest import store_events
from platform_api.events.schemas import EventIn, HealthMetricSynced
from platform_api.health.crypto import TokenCipher
from platform_api.health.schemas import IntegrationCreate, MeasurementIn
from platform_api.health.tables import HealthIntegration, HealthMetricDay
from platform_api.health.units import UnitError, normalise
from platform_api.outbox import event_uuid

FIELDS = ("steps", "active_minutes", "resting_hr", "sleep_minutes", "weight_kg")
DayKey = tuple[str, date]  # (user_id, day)


def link_integration(
    session: Session, *, user_id: str, body: IntegrationCreate, cipher: TokenCipher, now: datetime | None = None
) -> tuple[HealthIntegration, bool]:
    """Link a provider, or replace its tokens when it is linked already; (integration, created)."""
    now = now or datetime.now(UTC)
    integration = session.scalars(
        select(HealthIntegration).where(
            HealthIntegration.user_id == user_id, HealthIntegration.provider == body.provider
        )
    ).one_or_none()
    created = integration is None
    if integration is None:
        integration = HealthIntegration(id=str(uuid4()), user_id=user_id, provider=body.provider, linked_at=now)
        session.add(integration)
    integration.access_token_enc = cipher.encrypt(body.access_token)
    integration.refresh_token_enc = cipher.encrypt(body.refresh_token) if body.refresh_token else None
    integration.token_expires_at = body.expires_at
    # New tokens from the user: a revoked or failing link is pulled again by the next scheduled sync.
    integration.status, integration.sync_error, integration.sync_failures = "active", None, 0
    session.commit()
    return integration, created


def provider_tokens(integration: HealthIntegration, cipher: TokenCipher) -> tuple[str, str | None]:
    """The decrypted tokens, for the code that calls the provider."""
    refresh = cipher.decrypt(integration.refresh_token_enc) if integration.refresh_token_enc else None
    return cipher.decrypt(integration.access_token_enc), refresh


def unlink_integration(session: Session, *, integration: HealthIntegration) -> None:
    session.delete(integration)
    session.commit()


def list_integrations(session: Session, *, user_id: str) -> list[HealthIntegration]:
    return list(
        session.scalars(
            select(HealthIntegration).where(HealthIntegration.user_id == user_id).order_by(HealthIntegration.provider)
        )
    )


def day_event_time(day: date, now: datetime) -> datetime:
    """A day's metrics are known at its end (UTC), or now for today."""
    return min(datetime.combine(day, time(23, 59, 59), UTC), now)


@dataclass(frozen=True)
class StoreResult:
    days: int
    changed: int
    unchanged: int


def check_day(values: dict[str, Any], day: date) -> str | None:
    """None if the day's values satisfy the event contract's ranges, else the reason."""
    try:
        HealthMetricSynced.model_validate({"day": day, **values})
    except ValidationError as exc:
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return None


def store_days(session: Session, *, source: str, days: dict[DayKey, dict[str, Any]], now: datetime) -> StoreResult:
    """Merge per-day values into the metric rows and emit an event per changed day (caller commits)."""
    if not days:
        return StoreResult(0, 0, 0)
    keys = list(days)
    existing: dict[DayKey, HealthMetricDay] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        for row in session.scalars(
            select(HealthMetricDay).where(
                HealthMetricDay.source == source, tuple_(HealthMetricDay.user_id, HealthMetricDay.day).in_(chunk)
            )
        ):
            existing[(row.user_id, row.day)] = row
    events: list[EventIn] = []
    changed = 0
    for (user_id, day), values in days.items():
        found = existing.get((user_id, day))
        if found is None:
            row = HealthMetricDay(user_id=user_id, day=day, source=source, updated_at=now)
            session.add(row)
        else:
            row = found
        before = {f: getattr(row, f) for f in FIELDS}
        merged = {f: values[f] if values.get(f) is not None else before[f] for f in FIELDS}
        if merged == before:
            continue
        for f, v in merged.items():
            setattr(row, f, v)
        row.updated_at = now
        changed += 1
        props = {"day": day.isoformat(), "source": source, **{f: v for f, v in merged.items() if v is not None}}
        digest = hashlib.sha256(json.dumps(props, sort_keys=True).encode()).hexdigest()[:16]
        events.append(
            EventIn(
                event_id=event_uuid(f"health_metric.synced:{user_id}:{day}:{source}:{digest}"),
                event_type="health_metric.synced",
                user_id=user_id,
                occurred_at=day_event_time(day, now),
                properties=props,
            )
        )
    store_events(session, events=events)
    return StoreResult(days=len(days), changed=changed, unchanged=len(days) - changed)


def sync_metrics(
    session: Session, *, integration: HealthIntegration, measurements: list[MeasurementIn], now: datetime | None = None
) -> StoreResult:
    """Normalise and store a batch from a linked provider; all or nothing (422 names the bad entries)."""
    now = now or datetime.now(UTC)
    days: dict[DayKey, dict[str, Any]] = {}
    problems: list[dict[str, Any]] = []
    for i, m in enumerate(measurements):
        if m.day > now.date():
            problems.append({"index": i, "msg": f"day {m.day} is in the future"})
            continue
        try:
            field, value = normalise(m.metric, m.value, m.unit)
        except UnitError as exc:
            problems.append({"index": i, "msg": str(exc)})
            continue
        days.setdefault((integration.user_id, m.day), {})[field] = value
    for (_, day), values in days.items():
        reason = check_day(values, day)
        if reason:
            problems.append({"day": day.isoformat(), "msg": f"out of range after normalisation: {reason}"})
    if problems:
        first = problems[0]
        where = f"measurement {first['index']}" if "index" in first else f"day {first['day']}"
        raise ApiError(
            422, f"{len(problems)} problem(s); nothing stored (first: {where}: {first['msg']})", details=problems
        )
    result = store_days(session, source=integration.provider, days=days, now=now)
    integration.last_synced_at = now
    session.commit()
    return result


def list_metric_days(
    session: Session,
    *,
    user_id: str,
    start: date | None = None,
    end: date | None = None,
    source: str | None = None,
    limit: int = 366,
) -> list[HealthMetricDay]:
    query = select(HealthMetricDay).where(HealthMetricDay.user_id == user_id)
    if start:
        query = query.where(HealthMetricDay.day >= start)
    if end:
        query = query.where(HealthMetricDay.day <= end)
    if source:
        query = query.where(HealthMetricDay.source == source)
    return list(session.scalars(query.order_by(HealthMetricDay.day.desc(), HealthMetricDay.source).limit(limit)))
