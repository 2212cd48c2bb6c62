"""Workout execution: start → log sets → complete (summary, streak, achievements).

Each step writes its rows and its event (`workout.started`, `exercise.logged`,
`workout.completed`) in one transaction. Event ids derive from the row ids, so a retried
step never duplicates an event. Completing twice returns the first summary unchanged.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from platform_api.catalogue.tables import WorkoutPlan
from platform_api.entitlements.service import require_premium
from platform_api.errors import ApiError
from platform_api.events.schemas import MAX_FUTURE_SKEW
from platform_api.health.tables import HealthMetricDay
from platform_api.outbox import emit_event
from platform_api.plans.exercises import exercises_by_id
from platform_api.transactions import for_update, retry_write
from platform_api.workouts.achievements import current_streak, earned
from platform_api.workouts.calories import SetWork, calories
from platform_api.workouts.schemas import SetIn, WorkoutCreate
from platform_api.workouts.scoring import performance_score
from platform_api.workouts.tables import Achievement, WorkoutSession, WorkoutSet

# Device timestamps older than this are refused: an app queues at most a day offline.
MAX_BACKDATE = timedelta(hours=24)
MAX_DURATION_MIN = 600.0  # the event contract's bound; a session left open longer is capped
MIN_DURATION_MIN = 0.1


def _device_time(value: datetime | None, now: datetime, what: str) -> datetime:
    if value is None:
        return now
    if value.tzinfo is None:
        raise ApiError(422, f"{what} must carry a timezone")
    value = value.astimezone(UTC)
    if value > now + MAX_FUTURE_SKEW:
        raise ApiError(422, f"{what} is in the future")
    if value < now - MAX_BACKDATE:
        raise ApiError(422, f"{what} is more than {MAX_BACKDATE.total_seconds() / 3600:.0f} h ago")
    return value


def start_workout(
    session: Session, *, user_id: str, body: WorkoutCreate, now: datetime | None = None
) -> tuple[WorkoutSession, bool]:
    """Start a session (`workout.started`); (session, False) when the app's id was started before."""
    now = now or datetime.now(UTC)
    if body.id is not None:
        existing = session.get(WorkoutSession, str(body.id))
        if existing is not None:
            if existing.user_id != user_id:  # another user's id: same answer as any id taken
                raise ApiError(409, "this workout id is taken", code="id_taken")
            return existing, False
    started_at = _device_time(body.started_at, now, "started_at")
    if body.plan_id is not None:
        plan = session.get(WorkoutPlan, body.plan_id)
        if plan is None:
            raise ApiError(404, "plan not found")
        if plan.premium:
            require_premium(session, user_id=user_id, item_id=plan.id)
    source = body.source or ("plan" if body.plan_id else "free")
    workout = WorkoutSession(
        id=str(body.id or uuid4()),
        user_id=user_id,
        plan_id=body.plan_id,
        status="active",
        source=source,
        request_id=body.request_id,
        started_at=started_at,
        total_sets=0,
        total_reps=0,
    )
    session.add(workout)
    emit_event(
        session,
        key=f"workout.started:{workout.id}",  # from the row id: a retried start cannot emit twice
        event_type="workout.started",
        user_id=user_id,
        item_id=body.plan_id,
        occurred_at=started_at,
        properties={"session_id": workout.id, "source": source, "request_id": body.request_id},
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raced = session.get(WorkoutSession, workout.id)
        if raced is None or raced.user_id != user_id:
            raise
        return raced, False  # the same start retried concurrently: the first one stands
    return workout, True


def _lock(session: Session, workout_id: str) -> WorkoutSession:
    query = select(WorkoutSession).where(WorkoutSession.id == workout_id).execution_options(populate_existing=True)
    if for_update(session):
        query = query.with_for_update()
    return session.scalars(query).one()


def log_sets(
    session: Session,
    *,
    workout: WorkoutSession,
    exercise_id: str,
    sets: list[SetIn],
    log_id: str | None = None,
    now: datetime | None = None,
) -> list[WorkoutSet]:
    """Record sets of one exercise (one `exercise.logged` event); 409 once the workout is completed.

    With the app's `log_id`, a retried log returns the sets stored the first time.
    """
    exercise = exercises_by_id().get(exercise_id)
    if exercise is None:
        raise ApiError(422, f"unknown exercise id {exercise_id!r}", code="unknown_exercise")
    now = now or datetime.now(UTC)

    def work() -> list[WorkoutSet]:
        locked = _lock(session, workout.id)
        if log_id is not None:
            logged = list_sets(session, workout_id=locked.id, log_id=log_id)
            if logged:
                return logged
        if locked.status != "active":
            raise ApiError(409, "this workout is completed; start a new one", code="workout_completed")
        position = (
            session.scalar(select(func.count()).select_from(WorkoutSet).where(WorkoutSet.session_id == locked.id)) or 0
        )
        this_log = log_id or str(uuid4())
        rows = [
            WorkoutSet(
                id=str(uuid4()),
                session_id=locked.id,
                log_id=this_log,
                exercise_id=exercise_id,
                category=exercise.category,
                position=position + i,
                reps=s.reps,
                duration_s=s.duration_s,
                weight_kg=s.weight_kg,
                rpe=s.rpe,
                logged_at=now,
            )
            for i, s in enumerate(sets)
        ]
        session.add_all(rows)
        locked.total_sets += len(rows)
        locked.total_reps += sum(s.reps for s in sets)
        rpes = [s.rpe for s in sets if s.rpe is not None]
        emit_event(
            session,
            key=f"exercise.logged:{locked.id}:{this_log}",
            event_type="exercise.logged",
            user_id=locked.user_id,
            item_id=locked.plan_id,
            occurred_at=now,
            properties={
                "session_id": locked.id,
                "exercise_id": exercise_id,
                "sets": len(sets),
                "reps": sum(s.reps for s in sets),
                "duration_s": min(4 * 3600, sum(s.duration_s for s in sets)),
                "weight_kg": max(s.weight_kg for s in sets),
                "rpe": round(sum(rpes) / len(rpes), 2) if rpes else None,
            },
        )
        return rows

    return retry_write(session, work)


def latest_weight_kg(session: Session, *, user_id: str) -> float | None:
    return session.scalar(
        select(HealthMetricDay.weight_kg)
        .where(HealthMetricDay.user_id == user_id, HealthMetricDay.weight_kg.is_not(None))
        .order_by(HealthMetricDay.day.desc())
        .limit(1)
    )


def completed_days(session: Session, *, user_id: str) -> list[date]:
    stamps = session.scalars(
        select(WorkoutSession.completed_at).where(
            WorkoutSession.user_id == user_id, WorkoutSession.status == "completed"
        )
    )
    return [s.date() for s in stamps if s is not None]


@dataclass(frozen=True)
class Summary:
    workout: WorkoutSession
    streak_days: int
    new_achievements: list[Achievement]


def complete_workout(
    session: Session, *, workout: WorkoutSession, ended_at: datetime | None = None, now: datetime | None = None
) -> Summary:
    now = now or datetime.now(UTC)
    end = _device_time(ended_at, now, "ended_at")

    def work() -> Summary:
        locked = _lock(session, workout.id)
        if locked.status == "completed":  # a retry: the first summary stands
            days = completed_days(session, user_id=locked.user_id)
            assert locked.completed_at is not None
            return Summary(locked, current_streak(days, today=locked.completed_at.date()), [])
        if end < locked.started_at:
            raise ApiError(422, "ended_at is before the workout started")
        sets = list(session.scalars(select(WorkoutSet).where(WorkoutSet.session_id == locked.id)))
        plan = session.get(WorkoutPlan, locked.plan_id) if locked.plan_id else None
        elapsed = (end - locked.started_at).total_seconds() / 60
        duration = round(min(MAX_DURATION_MIN, max(MIN_DURATION_MIN, elapsed)), 1)
        rpes = [s.rpe for s in sets if s.rpe is not None]
        mean_rpe = round(sum(rpes) / len(rpes), 2) if rpes else None
        locked.status = "completed"
        locked.completed_at = end
        locked.duration_min = duration
        locked.total_sets = len(sets)
        locked.total_reps = sum(s.reps for s in sets)
        locked.avg_rpe = mean_rpe
        locked.category = (
            Counter(s.category for s in sets).most_common(1)[0][0] if sets else plan.category if plan else None
        )
        locked.calories = min(
            5000.0,
            calories(
                [SetWork(s.category, s.reps, s.duration_s, s.rpe) for s in sets],
                duration_min=duration,
                weight_kg=latest_weight_kg(session, user_id=locked.user_id),
                fallback_category=locked.category,
            ),
        )
        locked.score = performance_score(
            total_sets=len(sets),
            mean_rpe=mean_rpe,
            duration_min=duration,
            planned_exercises=len(plan.exercise_ids) if plan else None,
            planned_minutes=plan.minutes_per_session if plan else None,
        )
        emit_event(
            session,
            key=f"workout.completed:{locked.id}",
            event_type="workout.completed",
            user_id=locked.user_id,
            item_id=locked.plan_id,
            occurred_at=end,
            properties={
                "session_id": locked.id,
                "duration_min": duration,
                "total_sets": locked.total_sets,
                "total_reps": locked.total_reps,
                "calories": locked.calories,
                "rpe": mean_rpe,
                "category": locked.category,
            },
        )
        session.flush()
        days = completed_days(session, user_id=locked.user_id)
        streak = current_streak(days, today=end.date())
        new = _award(
            session,
            user_id=locked.user_id,
            codes=earned(completed=len(days), streak=streak),
            workout_id=locked.id,
            at=end,
        )
        return Summary(locked, streak, new)

    return retry_write(session, work)


def _award(session: Session, *, user_id: str, codes: list[str], workout_id: str, at: datetime) -> list[Achievement]:
    held = set(session.scalars(select(Achievement.code).where(Achievement.user_id == user_id)))
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    new: list[Achievement] = []
    for code in codes:
        if code in held:
            continue
        row = {"id": str(uuid4()), "user_id": user_id, "code": code, "session_id": workout_id, "earned_at": at}
        # Two workouts completing at once may both qualify: the unique (user, code) keeps one.
        stored = session.execute(
            insert(Achievement)
            .values(row)
            .on_conflict_do_nothing(index_elements=["user_id", "code"])
            .returning(Achievement.id)
        ).first()
        if stored is not None:
            new.append(Achievement(**row))
    return new


def list_sets(session: Session, *, workout_id: str, log_id: str | None = None) -> list[WorkoutSet]:
    query = select(WorkoutSet).where(WorkoutSet.session_id == workout_id)
    if log_id is not None:
        query = query.where(WorkoutSet.log_id == log_id)
    return list(session.scalars(query.order_by(WorkoutSet.position)))


def list_workouts(
    session: Session, *, user_id: str, limit: int, after: tuple[str, str] | None = None
) -> tuple[list[WorkoutSession], int]:
    """Newest first by (started_at, id)."""
    query = select(WorkoutSession).where(WorkoutSession.user_id == user_id)
    if after is not None:
        at = datetime.fromisoformat(after[0])
        query = query.where(
            (WorkoutSession.started_at < at) | ((WorkoutSession.started_at == at) & (WorkoutSession.id < after[1]))
        )
    rows = session.scalars(query.order_by(WorkoutSession.started_at.desc(), WorkoutSession.id.desc()).limit(limit))
    total = (
        session.scalar(select(func.count()).select_from(WorkoutSession).where(WorkoutSession.user_id == user_id)) or 0
    )
    return list(rows), total


def list_achievements(session: Session, *, user_id: str) -> list[Achievement]:
    return list(
        session.scalars(
            select(Achievement).where(Achievement.user_id == user_id).order_by(Achievement.earned_at, Achievement.code)
        )
    )
