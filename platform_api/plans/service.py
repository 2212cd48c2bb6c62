"""Trainers, plan browsing with filters and cursor pagination, enrollment."""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import uuid4

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from platform_api.catalogue.tables import ContentItem, WorkoutPlan
from platform_api.entitlements.service import require_premium
from platform_api.errors import ApiError
from platform_api.outbox import emit_event, enqueue_email
from platform_api.plans.exercises import exercises_by_id, unknown_exercises
from platform_api.plans.schemas import PlanCreate, TrainerUpdate
from platform_api.plans.tables import PlanEnrollment, TrainerProfile

# Equipment everybody has: a plan asking only for these fits any filter.
ALWAYS_AVAILABLE = frozenset({"body only", "none"})


@dataclass(frozen=True)
class PlanFilter:
    goal: str | None = None
    level: str | None = None
    equipment: frozenset[str] | None = None  # what the user has; a plan fits if it needs nothing else
    trainer_id: str | None = None
    premium: bool | None = None


def fits_equipment(plan_equipment: Iterable[str], available: frozenset[str] | None) -> bool:
    return available is None or set(plan_equipment) <= (available | ALWAYS_AVAILABLE)


def list_plans(
    session: Session, *, filters: PlanFilter, limit: int, after: str | None = None
) -> tuple[list[WorkoutPlan], int, str | None]:
    """One page in id order, the number of matches over all pages, and the id to continue after.

    Goal, level, trainer and premium filter in SQL. The equipment fit is a subset test on a
    JSON list, done here over (id, equipment) pairs of the SQL matches: plans number in the
    hundreds, and the test stays identical on SQLite and PostgreSQL.
    """
    query = select(WorkoutPlan.id, WorkoutPlan.equipment)
    if filters.goal:
        query = query.where(WorkoutPlan.goal == filters.goal)
    if filters.level:
        query = query.where(WorkoutPlan.level == filters.level)
    if filters.trainer_id:
        query = query.where(WorkoutPlan.trainer_id == filters.trainer_id)
    if filters.premium is not None:
        query = query.where(WorkoutPlan.premium == filters.premium)
    matching = [
        pid for pid, eq in session.execute(query.order_by(WorkoutPlan.id)) if fits_equipment(eq, filters.equipment)
    ]
    remaining = [pid for pid in matching if after is None or pid > after]
    page_ids = remaining[:limit]
    plans = {p.id: p for p in session.scalars(select(WorkoutPlan).where(WorkoutPlan.id.in_(page_ids)))}
    page = [plans[i] for i in page_ids]
    next_after = page_ids[-1] if len(remaining) > limit else None
    return page, len(matching), next_after


def get_plan(session: Session, *, plan_id: str) -> WorkoutPlan:
    plan = session.get(WorkoutPlan, plan_id)
    if plan is None:
        raise ApiError(404, "plan not found")
    return plan


def create_plan(session: Session, *, trainer_id: str, body: PlanCreate, now: datetime | None = None) -> WorkoutPlan:
    """A trainer's plan; category, equipment and muscles follow from its catalogue exercises."""
    missing = unknown_exercises(body.exercise_ids)
    if missing:
        raise ApiError(422, f"unknown exercise ids: {', '.join(missing[:10])}", code="unknown_exercise")
    if session.get(TrainerProfile, trainer_id) is None:
        raise ApiError(409, "create your trainer profile first (PUT /v1/trainers/me)", code="no_trainer_profile")
    exercises = [exercises_by_id()[i] for i in body.exercise_ids]
    plan = WorkoutPlan(
        id=f"plan-t-{uuid4().hex[:16]}",
        title=body.title,
        goal=body.goal,
        level=body.level,
        category=Counter(e.category for e in exercises).most_common(1)[0][0],
        equipment=sorted({e.equipment for e in exercises}),
        muscles=sorted({m for e in exercises for m in e.primary_muscles}),
        exercise_ids=list(body.exercise_ids),
        weeks=body.weeks,
        sessions_per_week=body.sessions_per_week,
        minutes_per_session=body.minutes_per_session,
        premium=body.premium,
        trainer_id=trainer_id,
        created_at=now or datetime.now(UTC),
    )
    session.add(plan)
    session.commit()
    return plan


# --- trainers ---


@dataclass(frozen=True)
class TrainerCard:
    profile: TrainerProfile
    plans: int
    content_items: int


def _cards(session: Session, profiles: list[TrainerProfile]) -> list[TrainerCard]:
    ids = [p.trainer_id for p in profiles]
    plans = dict(
        session.execute(
            select(WorkoutPlan.trainer_id, func.count())
            .where(WorkoutPlan.trainer_id.in_(ids))
            .group_by(WorkoutPlan.trainer_id)
        )
        .tuples()
        .all()
    )
    content = dict(
        session.execute(
            select(ContentItem.trainer_id, func.count())
            .where(ContentItem.trainer_id.in_(ids), ContentItem.status == "ready")
            .group_by(ContentItem.trainer_id)
        )
        .tuples()
        .all()
    )
    return [TrainerCard(p, plans.get(p.trainer_id, 0), content.get(p.trainer_id, 0)) for p in profiles]


def list_trainers(
    session: Session, *, limit: int, after: str | None = None, specialty: str | None = None
) -> tuple[list[TrainerCard], int, str | None]:
    rows = list(session.scalars(select(TrainerProfile).order_by(TrainerProfile.trainer_id)))
    if specialty:
        rows = [r for r in rows if specialty in r.specialties]
    remaining = [r for r in rows if after is None or r.trainer_id > after]
    page = remaining[:limit]
    return _cards(session, page), len(rows), page[-1].trainer_id if len(remaining) > limit else None


def get_trainer(session: Session, *, trainer_id: str) -> TrainerCard:
    profile = session.get(TrainerProfile, trainer_id)
    if profile is None:
        raise ApiError(404, "trainer not found")
    return _cards(session, [profile])[0]


def upsert_trainer(
    session: Session, *, trainer_id: str, body: TrainerUpdate, now: datetime | None = None
) -> TrainerCard:
    now = now or datetime.now(UTC)
    profile = session.get(TrainerProfile, trainer_id)
    if profile is None:
        profile = TrainerProfile(trainer_id=trainer_id, created_at=now)
        session.add(profile)
    profile.display_name = body.display_name
    profile.bio = body.bio
    profile.specialties = list(body.specialties)
    profile.updated_at = now
    session.commit()
    return _cards(session, [profile])[0]


# --- enrollment ---


def enroll(
    session: Session,
    *,
    user_id: str,
    plan_id: str,
    source: str = "browse",
    request_id: str | None = None,
    now: datetime | None = None,
) -> tuple[PlanEnrollment, bool]:
    """Enroll the user (idempotent: an active enrollment is returned as is, with False).

    The enrollment, its `plan.enrolled` event and the confirmation email (outbox) commit together.
    """
    now = now or datetime.now(UTC)
    plan = get_plan(session, plan_id=plan_id)
    if plan.premium:
        require_premium(session, user_id=user_id, item_id=plan.id)
    existing = session.scalars(
        select(PlanEnrollment).where(PlanEnrollment.user_id == user_id, PlanEnrollment.plan_id == plan_id)
    ).one_or_none()
    if existing is not None and existing.status == "active":
        return existing, False
    if existing is None:
        enrollment = PlanEnrollment(
            id=str(uuid4()),
            user_id=user_id,
            plan_id=plan_id,
            status="active",
            source=source,
            request_id=request_id,
            enrolled_at=now,
        )
        session.add(enrollment)
    else:  # re-enrolling after a cancellation: the same row, a new enrollment episode
        enrollment = existing
        enrollment.status, enrollment.source, enrollment.request_id = "active", source, request_id
        enrollment.enrolled_at, enrollment.cancelled_at = now, None
    episode = f"{enrollment.id}:{now.isoformat()}"
    emit_event(
        session,
        key=f"plan.enrolled:{episode}",
        event_type="plan.enrolled",
        user_id=user_id,
        item_id=plan_id,
        occurred_at=now,
        properties={"source": source, "request_id": request_id},
    )
    enqueue_email(
        session,
        user_id=user_id,
        dedupe_key=f"plan.enrolled:{episode}",
        subject=f"You're enrolled: {plan.title}",
        body=(
            f"Welcome to {plan.title}!\n{plan.weeks} weeks, {plan.sessions_per_week} sessions a week, "
            f"about {plan.minutes_per_session} minutes each. Start your first workout from the app."
        ),
    )
    try:
        session.commit()
    except IntegrityError:
        # A concurrent request enrolled first (unique user+plan): that enrollment is the answer.
        session.rollback()
        winner = session.scalars(
            select(PlanEnrollment).where(PlanEnrollment.user_id == user_id, PlanEnrollment.plan_id == plan_id)
        ).one()
        return winner, False
    return enrollment, True


def cancel_enrollment(session: Session, *, enrollment: PlanEnrollment, now: datetime | None = None) -> PlanEnrollment:
    if enrollment.status != "cancelled":
        enrollment.status = "cancelled"
        enrollment.cancelled_at = now or datetime.now(UTC)
        session.commit()
    return enrollment


def list_enrollments(session: Session, *, user_id: str, status: str | None = None) -> list[PlanEnrollment]:
    query = select(PlanEnrollment).where(PlanEnrollment.user_id == user_id)
    if status:
        query = query.where(PlanEnrollment.status == status)
    return list(session.scalars(query.order_by(PlanEnrollment.enrolled_at.desc(), PlanEnrollment.id)))
