"""Request and response bodies of trainers, plans and enrollments."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from platform_api.events.schemas import Goal, ItemId, Level, Source

Name = Annotated[str, Field(min_length=1, max_length=40)]


class TrainerUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "display_name": "Alex Rivera",
                    "bio": "Strength coach, 10 years with beginners.",
                    "specialties": ["strength", "mobility"],
                }
            ]
        },
    )

    display_name: str = Field(min_length=1, max_length=120)
    bio: str = Field("", max_length=4000)
    specialties: list[Name] = Field(default_factory=list, max_length=10)


class TrainerPublic(BaseModel):
    trainer_id: str
    display_name: str
    bio: str
    specialties: list[str]
    plans: int
    content_items: int


class TrainersPublic(BaseModel):
    data: list[TrainerPublic]
    count: int
    next_cursor: str | None = None


class PlanCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "Desk-worker strength",
                    "goal": "build_strength",
                    "level": "beginner",
                    "exercise_ids": ["Bodyweight_Squat", "Pushups", "Plank"],
                    "weeks": 6,
                    "sessions_per_week": 3,
                    "minutes_per_session": 30,
                    "premium": False,
                }
            ]
        },
    )

    title: str = Field(min_length=1, max_length=200)
    goal: Goal
    level: Level
    exercise_ids: list[ItemId] = Field(min_length=1, max_length=40, description="exercise ids of the catalogue")
    weeks: int = Field(ge=1, le=52)
    sessions_per_week: int = Field(ge=1, le=7)
    minutes_per_session: int = Field(ge=5, le=240)
    premium: bool = False


class PlanPublic(BaseModel):
    id: str
    title: str
    goal: str
    level: str
    category: str
    equipment: list[str]
    muscles: list[str]
    exercise_ids: list[str]
    weeks: int
    sessions_per_week: int
    minutes_per_session: int
    premium: bool
    trainer_id: str | None

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "plan-build-strength-beginner-bodyweight",
                    "title": "Build strength: beginner bodyweight plan",
                    "goal": "build_strength",
                    "level": "beginner",
                    "category": "strength",
                    "equipment": ["body only"],
                    "muscles": ["chest", "quadriceps"],
                    "exercise_ids": ["Pushups"],
                    "weeks": 8,
                    "sessions_per_week": 3,
                    "minutes_per_session": 60,
                    "premium": False,
                    "trainer_id": None,
                }
            ]
        }
    )


class PlansPublic(BaseModel):
    data: list[PlanPublic]
    count: int = Field(description="plans matching the filters, over all pages")
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page; null on the last")


class EnrollmentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"source": "recommendation", "request_id": "req-9f2c"}]}
    )

    source: Source = "browse"
    request_id: str | None = Field(None, max_length=64, description="the recommendation request that showed it")


class EnrollmentPublic(BaseModel):
    id: str
    plan_id: str
    status: Literal["active", "cancelled"]
    source: str
    enrolled_at: datetime
    cancelled_at: datetime | None


class EnrollmentsPublic(BaseModel):
    data: list[EnrollmentPublic]
    count: int
