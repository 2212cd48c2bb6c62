"""Trainers, plans and enrollments over HTTP."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Query, Response

from platform_api.auth.ownership import get_owned
from platform_api.background import relay_emails
from platform_api.boundary import ItemPathId, RowId
from platform_api.catalogue.tables import WorkoutPlan
from platform_api.deps import CurrentUser, EmailDep, PlatformDep, SessionDep, TrainerUser
from platform_api.errors import ERROR_SCHEMA
from platform_api.events.schemas import Goal, Level
from platform_api.pagination import DEFAULT_LIMIT, MAX_LIMIT, Cursor, decode_cursor, encode_cursor
from platform_api.plans import service
from platform_api.plans.schemas import (
    EnrollmentCreate,
    EnrollmentPublic,
    EnrollmentsPublic,
    Name,
    PlanCreate,
    PlanPublic,
    PlansPublic,
    TrainerPublic,
    TrainersPublic,
    TrainerUpdate,
)
from platform_api.plans.tables import PlanEnrollment

router = APIRouter(prefix="/v1", tags=["plans"])


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error responses a route documents, each in the one error shape."""
    return {code: ERROR_SCHEMA for code in codes}


Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]


def plan_public(p: WorkoutPlan) -> PlanPublic:
    return PlanPublic(
        id=p.id,
        title=p.title,
        goal=p.goal,
        level=p.level,
        category=p.category,
        equipment=list(p.equipment),
        muscles=list(p.muscles),
        exercise_ids=list(p.exercise_ids),
        weeks=p.weeks,
        sessions_per_week=p.sessions_per_week,
        minutes_per_session=p.minutes_per_session,
        premium=p.premium,
        trainer_id=p.trainer_id,
    )


def trainer_public(card: service.TrainerCard) -> TrainerPublic:
    p = card.profile
    return TrainerPublic(
        trainer_id=p.trainer_id,
        display_name=p.display_name,
        bio=p.bio,
        specialties=list(p.specialties),
        plans=card.plans,
        content_items=card.content_items,
    )


def enrollment_public(e: PlanEnrollment) -> EnrollmentPublic:
    return EnrollmentPublic(
        id=e.id,
        plan_id=e.plan_id,
        status=e.status,
        source=e.source,  # type: ignore[arg-type]
        enrolled_at=e.enrolled_at,
        cancelled_at=e.cancelled_at,
    )


@router.get("/trainers", response_model=TrainersPublic, responses=errors(400, 401, 422))
def list_trainers(
    _: CurrentUser,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    specialty: Annotated[str | None, Query(max_length=40)] = None,
) -> TrainersPublic:
    """Browse trainers in a stable order, optionally by specialty."""
    after = decode_cursor(cursor, size=1)
    cards, count, last = service.list_trainers(
        session, limit=limit, after=str(after[0]) if after else None, specialty=specialty
    )
    return TrainersPublic(
        data=[trainer_public(c) for c in cards], count=count, next_cursor=encode_cursor([last]) if last else None
    )


@router.put("/trainers/me", response_model=TrainerPublic, responses=errors(401, 403, 422))
def update_my_trainer_profile(body: TrainerUpdate, trainer: TrainerUser, session: SessionDep) -> TrainerPublic:
    """Create or update the calling trainer's public profile."""
    return trainer_public(service.upsert_trainer(session, trainer_id=trainer.id, body=body))


@router.get("/trainers/{trainer_id}", response_model=TrainerPublic, responses=errors(401, 404))
def get_trainer(trainer_id: RowId, _: CurrentUser, session: SessionDep) -> TrainerPublic:
    """Read one trainer's profile with the number of their plans and content items."""
    return trainer_public(service.get_trainer(session, trainer_id=trainer_id))


@router.get("/plans", response_model=PlansPublic, responses=errors(400, 401, 422))
def list_plans(
    _: CurrentUser,
    session: SessionDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    goal: Goal | None = None,
    level: Level | None = None,
    equipment: Annotated[
        list[Name] | None,
        Query(
            max_length=20,
            description="equipment at hand (repeatable); plans needing anything else are left out; "
            "'body only' is always available",
            examples=[["dumbbell"]],
        ),
    ] = None,
    trainer_id: Annotated[str | None, Query(max_length=64)] = None,
    premium: bool | None = None,
) -> PlansPublic:
    """Browse workout plans by goal, level, equipment at hand, trainer, in a stable id order."""
    after = decode_cursor(cursor, size=1)
    filters = service.PlanFilter(
        goal=goal,
        level=level,
        trainer_id=trainer_id,
        premium=premium,
        equipment=frozenset(e.strip().lower() for e in equipment) if equipment else None,
    )
    page, count, last = service.list_plans(
        session, filters=filters, limit=limit, after=str(after[0]) if after else None
    )
    return PlansPublic(
        data=[plan_public(p) for p in page], count=count, next_cursor=encode_cursor([last]) if last else None
    )


@router.post("/plans", status_code=201, response_model=PlanPublic, responses=errors(401, 403, 409, 422))
def create_plan(body: PlanCreate, trainer: TrainerUser, session: SessionDep) -> PlanPublic:
    """Publish a plan built from catalogue exercises (trainers)."""
    return plan_public(service.create_plan(session, trainer_id=trainer.id, body=body))


@router.get("/plans/{plan_id}", response_model=PlanPublic, responses=errors(401, 404))
def get_plan(plan_id: ItemPathId, _: CurrentUser, session: SessionDep) -> PlanPublic:
    """Read one plan."""
    return plan_public(service.get_plan(session, plan_id=plan_id))


@router.post(
    "/plans/{plan_id}/enrollments",
    status_code=201,
    response_model=EnrollmentPublic,
    responses={**errors(401, 403, 404, 422), 200: {"model": EnrollmentPublic, "description": "already enrolled"}},
)
def enroll(
    plan_id: ItemPathId,
    user: CurrentUser,
    session: SessionDep,
    platform: PlatformDep,
    mailer: EmailDep,
    response: Response,
    background: BackgroundTasks,
    body: EnrollmentCreate | None = None,
) -> EnrollmentPublic:
    """Enroll in a plan (confirmation email, plan.enrolled); 200 with the same enrollment if already enrolled."""
    body = body or EnrollmentCreate()
    enrollment, created = service.enroll(
        session, user_id=user.id, plan_id=plan_id, source=body.source, request_id=body.request_id
    )
    if created:
        background.add_task(relay_emails, platform, mailer)
    else:
        response.status_code = 200
    return enrollment_public(enrollment)


@router.get("/enrollments", response_model=EnrollmentsPublic, responses=errors(401, 422))
def list_enrollments(
    user: CurrentUser, session: SessionDep, status: Literal["active", "cancelled"] | None = None
) -> EnrollmentsPublic:
    """List the caller's enrollments, newest first."""
    rows = service.list_enrollments(session, user_id=user.id, status=status)
    return EnrollmentsPublic(data=[enrollment_public(e) for e in rows], count=len(rows))


@router.get("/enrollments/{enrollment_id}", response_model=EnrollmentPublic, responses=errors(401, 404))
def get_enrollment(enrollment_id: RowId, user: CurrentUser, session: SessionDep) -> EnrollmentPublic:
    """Read one of the caller's enrollments (404 for anyone else's)."""
    return enrollment_public(get_owned(session, PlanEnrollment, enrollment_id, user, what="enrollment"))


@router.delete("/enrollments/{enrollment_id}", response_model=EnrollmentPublic, responses=errors(401, 404))
def cancel_enrollment(enrollment_id: RowId, user: CurrentUser, session: SessionDep) -> EnrollmentPublic:
    """Cancel one of the caller's enrollments (404 for anyone else's)."""
    enrollment = get_owned(session, PlanEnrollment, enrollment_id, user, what="enrollment")
    return enrollment_public(service.cancel_enrollment(session, enrollment=enrollment))
