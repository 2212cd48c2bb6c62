"""Workout execution over HTTP: start, log sets, complete; achievements and streaks."""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from platform_api.auth.ownership import get_owned
from platform_api.boundary import RowId
from platform_api.deps import CurrentUser, SessionDep
from platform_api.errors import ERROR_SCHEMA
from platform_api.pagination import DEFAULT_LIMIT, MAX_LIMIT, Cursor, decode_cursor, encode_cursor
from platform_api.workouts import service
from platform_api.workouts.achievements import TITLES, current_streak, longest_streak
from platform_api.workouts.schemas import (
    AchievementPublic,
    AchievementsPublic,
    SetPublic,
    SetsCreate,
    SetsPublic,
    WorkoutComplete,
    WorkoutCreate,
    WorkoutPublic,
    WorkoutsPublic,
    WorkoutSummaryPublic,
)
from platform_api.workouts.tables import Achievement, WorkoutSession, WorkoutSet

router = APIRouter(prefix="/v1", tags=["workouts"])


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error responses a route documents, each in the one error shape."""
    return {code: ERROR_SCHEMA for code in codes}


def workout_public(w: WorkoutSession) -> WorkoutPublic:
    return WorkoutPublic(
        id=w.id,
        plan_id=w.plan_id,
        status=w.status,
        source=w.source,
        started_at=w.started_at,
        completed_at=w.completed_at,
        duration_min=w.duration_min,
        total_sets=w.total_sets,
        total_reps=w.total_reps,
        calories=w.calories,
        avg_rpe=w.avg_rpe,
        score=w.score,
        category=w.category,
    )


def set_public(s: WorkoutSet) -> SetPublic:
    return SetPublic(
        id=s.id,
        exercise_id=s.exercise_id,
        category=s.category,
        position=s.position,
        reps=s.reps,
        duration_s=s.duration_s,
        weight_kg=s.weight_kg,
        rpe=s.rpe,
        logged_at=s.logged_at,
    )


def achievement_public(a: Achievement) -> AchievementPublic:
    return AchievementPublic(code=a.code, title=TITLES.get(a.code, a.code), earned_at=a.earned_at)


@router.post(
    "/workouts",
    status_code=201,
    response_model=WorkoutPublic,
    responses={**errors(401, 403, 404, 409, 422), 200: {"model": WorkoutPublic, "description": "started before"}},
)
def start_workout(body: WorkoutCreate, user: CurrentUser, session: SessionDep, response: Response) -> WorkoutPublic:
    """Start a workout session, from a plan or free (workout.started); 200 when its id was started before."""
    workout, created = service.start_workout(session, user_id=user.id, body=body)
    if not created:
        response.status_code = 200
    return workout_public(workout)


@router.get("/workouts", response_model=WorkoutsPublic, responses=errors(400, 401, 422))
def list_workouts(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> WorkoutsPublic:
    """List the caller's workouts, newest first."""
    after = decode_cursor(cursor, size=2)
    rows, count = service.list_workouts(
        session, user_id=user.id, limit=limit, after=(str(after[0]), str(after[1])) if after else None
    )
    next_cursor = encode_cursor([rows[-1].started_at.isoformat(), rows[-1].id]) if len(rows) == limit else None
    return WorkoutsPublic(data=[workout_public(w) for w in rows], count=count, next_cursor=next_cursor)


@router.get("/workouts/{workout_id}", response_model=WorkoutPublic, responses=errors(401, 404))
def get_workout(workout_id: RowId, user: CurrentUser, session: SessionDep) -> WorkoutPublic:
    """Read one of the caller's workouts (404 for anyone else's)."""
    return workout_public(get_owned(session, WorkoutSession, workout_id, user, what="workout"))


@router.post(
    "/workouts/{workout_id}/sets", status_code=201, response_model=SetsPublic, responses=errors(401, 404, 409, 422)
)
def log_sets(workout_id: RowId, body: SetsCreate, user: CurrentUser, session: SessionDep) -> SetsPublic:
    """Log sets of one exercise in an active workout (exercise.logged)."""
    workout = get_owned(session, WorkoutSession, workout_id, user, what="workout")
    rows = service.log_sets(
        session,
        workout=workout,
        exercise_id=body.exercise_id,
        sets=body.sets,
        log_id=str(body.log_id) if body.log_id else None,
    )
    return SetsPublic(data=[set_public(s) for s in rows], count=len(rows))


@router.get("/workouts/{workout_id}/sets", response_model=SetsPublic, responses=errors(401, 404))
def list_sets(workout_id: RowId, user: CurrentUser, session: SessionDep) -> SetsPublic:
    """List the sets logged in one of the caller's workouts."""
    workout = get_owned(session, WorkoutSession, workout_id, user, what="workout")
    rows = service.list_sets(session, workout_id=workout.id)
    return SetsPublic(data=[set_public(s) for s in rows], count=len(rows))


@router.post("/workouts/{workout_id}/complete", response_model=WorkoutSummaryPublic, responses=errors(401, 404, 422))
def complete_workout(
    workout_id: RowId, user: CurrentUser, session: SessionDep, body: WorkoutComplete | None = None
) -> WorkoutSummaryPublic:
    """Complete a workout: summary with duration, sets, reps, calories, score; streak and new achievements."""
    workout = get_owned(session, WorkoutSession, workout_id, user, what="workout")
    summary = service.complete_workout(session, workout=workout, ended_at=body.ended_at if body else None)
    return WorkoutSummaryPublic(
        workout=workout_public(summary.workout),
        streak_days=summary.streak_days,
        new_achievements=[achievement_public(a) for a in summary.new_achievements],
    )


@router.get("/achievements", response_model=AchievementsPublic, responses=errors(401))
def my_achievements(user: CurrentUser, session: SessionDep) -> AchievementsPublic:
    """List the caller's achievements with their current and longest streak."""
    rows = service.list_achievements(session, user_id=user.id)
    days = service.completed_days(session, user_id=user.id)
    return AchievementsPublic(
        data=[achievement_public(a) for a in rows],
        count=len(rows),
        current_streak=current_streak(days, today=datetime.now(UTC).date()),
        longest_streak=longest_streak(days),
        completed_workouts=len(days),
    )
