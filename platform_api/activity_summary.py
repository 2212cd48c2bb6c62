"""The daily activity summary (the worker's `activity_summary` job): one email per user active on a day.

Active: completed a workout that day (UTC) or has health metrics for it. Each summary goes into the
outbox keyed by (user, day), so a second run for the day queues nothing; the worker's relay sends it.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from platform_api.auth.tables import User
from platform_api.health.service import FIELDS
from platform_api.health.tables import HealthMetricDay
from platform_api.outbox import OutboxMessage, enqueue_email
from platform_api.workouts.tables import WorkoutSession

CHUNK = 500  # ids per IN list


@dataclass(frozen=True)
class SummaryReport:
    day: date
    active_users: int  # users with an account and an address who were active that day
    queued: int  # summaries new in the outbox (the others were queued by an earlier run)


@dataclass
class _Day:
    workouts: int = 0
    minutes: float = 0.0
    calories: float = 0.0
    health: dict[str, float] | None = None


def dedupe_key(user_id: str, day: date) -> str:
    return f"activity_summary:{user_id}:{day.isoformat()}"


def _collect(session: Session, day: date) -> dict[str, _Day]:
    start = datetime.combine(day, time.min, UTC)
    by_user: dict[str, _Day] = defaultdict(_Day)
    for w in session.scalars(
        select(WorkoutSession).where(
            WorkoutSession.status == "completed",
            WorkoutSession.completed_at >= start,
            WorkoutSession.completed_at < start + timedelta(days=1),
        )
    ):
        d = by_user[w.user_id]
        d.workouts += 1
        d.minutes += w.duration_min or 0
        d.calories += w.calories or 0
    # Several sources for one day: per value, the most recently synced source's.
    for row in session.scalars(
        select(HealthMetricDay).where(HealthMetricDay.day == day).order_by(HealthMetricDay.updated_at.desc())
    ):
        health = by_user[row.user_id].health
        if health is None:
            health = by_user[row.user_id].health = {}
        for field in FIELDS:
            value = getattr(row, field)
            if value is not None:
                health.setdefault(field, value)
    return by_user


def _body(day: date, d: _Day) -> str:
    lines = [f"Your activity on {day:%A, %d %B %Y}:"]
    if d.workouts:
        noun = "workout" if d.workouts == 1 else "workouts"
        lines.append(f"- {d.workouts} {noun}, {d.minutes:.0f} minutes, {d.calories:.0f} kcal")
    health = d.health or {}
    if "steps" in health:
        lines.append(f"- {health['steps']:,.0f} steps")
    if "active_minutes" in health:
        lines.append(f"- {health['active_minutes']:.0f} active minutes")
    if "sleep_minutes" in health:
        hours, minutes = divmod(int(health["sleep_minutes"]), 60)
        lines.append(f"- {hours} h {minutes:02d} min of sleep")
    if "resting_hr" in health:
        lines.append(f"- resting heart rate {health['resting_hr']:.0f} bpm")
    if "weight_kg" in health:
        lines.append(f"- weight {health['weight_kg']:.1f} kg")
    return "\n".join(lines)


def queue_summaries(session: Session, *, day: date) -> SummaryReport:
    """Queue the day's summaries in the outbox and commit; idempotent per (user, day)."""
    by_user = _collect(session, day)
    candidates = sorted(by_user)
    users: set[str] = set()
    already: set[str] = set()
    for start in range(0, len(candidates), CHUNK):
        chunk = candidates[start : start + CHUNK]
        users.update(
            session.scalars(select(User.id).where(User.id.in_(chunk), User.is_active, User.email.is_not(None)))
        )
        chunk_keys = [dedupe_key(user_id, day) for user_id in chunk]
        already.update(
            session.scalars(select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.in_(chunk_keys)))
        )
    keys = {dedupe_key(user_id, day): user_id for user_id in users}
    already &= set(keys)
    for key, user_id in sorted(keys.items()):
        if key not in already:
            enqueue_email(
                session,
                user_id=user_id,
                dedupe_key=key,
                subject=f"Your day in fitrec: {day.isoformat()}",
                body=_body(day, by_user[user_id]),
            )
    session.commit()
    return SummaryReport(day=day, active_users=len(users), queued=len(keys) - len(already))


def yesterday(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).date() - timedelta(days=1)
