"""Request and response bodies of workout execution."""

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from platform_api.events.schemas import Source


class WorkoutCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"plan_id": "plan-build-strength-beginner-bodyweight", "source": "plan"}]},
    )

    id: UUID | None = Field(None, description="the app's own id for the session: a retried start returns it, no copy")
    plan_id: str | None = Field(None, max_length=128, description="the plan this session follows; null: free")
    source: Source | None = Field(None, description="defaults to 'plan' with a plan_id, else 'free'")
    request_id: str | None = Field(None, max_length=64)
    started_at: datetime | None = Field(None, description="device time when the session started; default now")


class SetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reps: int = Field(0, ge=0, le=1000)
    duration_s: int = Field(0, ge=0, le=4 * 3600)
    weight_kg: float = Field(0, ge=0, le=500)
    rpe: float | None = Field(None, ge=1, le=10, description="perceived exertion, 1-10")

    @model_validator(mode="after")
    def _did_something(self) -> "SetIn":
        if self.reps == 0 and self.duration_s == 0:
            raise ValueError("a set needs reps or a duration")
        return self


class SetsCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"exercise_id": "Pushups", "sets": [{"reps": 12, "rpe": 6}, {"reps": 10, "rpe": 7.5}]}]
        },
    )

    log_id: UUID | None = Field(None, description="the app's id for this log: a retried log returns it, no copy")
    exercise_id: str = Field(min_length=1, max_length=128, description="an exercise id of the catalogue")
    sets: list[SetIn] = Field(min_length=1, max_length=50)


class WorkoutComplete(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"ended_at": "2026-11-21T07:42:00Z"}]})

    ended_at: datetime | None = Field(None, description="device time when the session ended; default now")


class SetPublic(BaseModel):
    id: str
    exercise_id: str
    category: str
    position: int
    reps: int
    duration_s: int
    weight_kg: float
    rpe: float | None
    logged_at: datetime


class SetsPublic(BaseModel):
    data: list[SetPublic]
    count: int


class WorkoutPublic(BaseModel):
    id: str
    plan_id: str | None
    status: str
    source: str
    started_at: datetime
    completed_at: datetime | None
    duration_min: float | None
    total_sets: int
    total_reps: int
    calories: float | None = Field(description="kcal, MET-based (see the MET table in the docs)")
    avg_rpe: float | None
    score: int | None = Field(description="performance score 0-100")
    category: str | None


class WorkoutsPublic(BaseModel):
    data: list[WorkoutPublic]
    count: int
    next_cursor: str | None = None


class AchievementPublic(BaseModel):
    code: str
    title: str
    earned_at: datetime


class WorkoutSummaryPublic(BaseModel):
    workout: WorkoutPublic
    streak_days: int
    new_achievements: list[AchievementPublic]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "workout": {
                        "id": "0f8a...",
                        "plan_id": None,
                        "status": "completed",
                        "source": "free",
                        "started_at": "2026-11-21T07:00:00Z",
                        "completed_at": "2026-11-21T07:42:00Z",
                        "duration_min": 42.0,
                        "total_sets": 12,
                        "total_reps": 130,
                        "calories": 171.5,
                        "avg_rpe": 7.2,
                        "score": 88,
                        "category": "strength",
                    },
                    "streak_days": 3,
                    "new_achievements": [
                        {"code": "streak_3", "title": "3-day streak", "earned_at": "2026-11-21T07:42:00Z"}
                    ],
                }
            ]
        }
    )


class AchievementsPublic(BaseModel):
    data: list[AchievementPublic]
    count: int
    current_streak: int
    longest_streak: int
    completed_workouts: int
