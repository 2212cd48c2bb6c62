"""Request and response bodies of content items."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from platform_api.events.schemas import ItemId, Level

Kind = Literal["exercise_guide", "video", "article"]
Category = Literal[
    "strength", "stretching", "cardio", "plyometrics", "powerlifting", "olympic weightlifting", "strongman"
]
Tag = Annotated[str, Field(min_length=1, max_length=40)]


class ContentCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "video",
                    "title": "Kettlebell swing, step by step",
                    "description": "Hinge, snap, float.",
                    "category": "strength",
                    "level": "beginner",
                    "equipment": ["kettlebells"],
                    "primary_muscles": ["hamstrings", "glutes"],
                    "duration_min": 8,
                    "premium": True,
                }
            ]
        },
    )

    kind: Kind
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=20000)
    category: Category
    level: Level
    equipment: list[Tag] = Field(default_factory=list, max_length=20)
    primary_muscles: list[Tag] = Field(default_factory=list, max_length=20)
    secondary_muscles: list[Tag] = Field(default_factory=list, max_length=20)
    exercise_ids: list[ItemId] = Field(default_factory=list, max_length=40)
    mechanic: Literal["compound", "isolation"] | None = None
    force: Literal["push", "pull", "static"] | None = None
    duration_min: int = Field(ge=1, le=600)
    premium: bool = False


class ContentUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"premium": False, "level": "intermediate"}]}
    )

    title: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=20000)
    category: Category | None = None
    level: Level | None = None
    equipment: list[Tag] | None = Field(None, max_length=20)
    primary_muscles: list[Tag] | None = Field(None, max_length=20)
    secondary_muscles: list[Tag] | None = Field(None, max_length=20)
    duration_min: int | None = Field(None, ge=1, le=600)
    premium: bool | None = None


class MediaPublic(BaseModel):
    content_type: str
    bytes: int
    url: str = Field(description="GET it with the same credentials; premium media need an entitlement")


class ContentCard(BaseModel):
    """What browsing shows: no body, no media."""

    id: str
    kind: str
    title: str
    category: str
    level: str
    equipment: list[str]
    primary_muscles: list[str]
    duration_min: int
    premium: bool
    status: str = Field(description="pending until its media is uploaded (trainer items), then ready")
    source: str = Field(description="catalogue | trainer")
    trainer_id: str | None


class ContentPublic(ContentCard):
    description: str
    secondary_muscles: list[str]
    exercise_ids: list[str]
    mechanic: str | None
    force: str | None
    media: MediaPublic | None
    created_at: datetime
    updated_at: datetime | None


class ContentsPublic(BaseModel):
    data: list[ContentCard]
    count: int
    next_cursor: str | None = None


class UnlockPublic(BaseModel):
    item_id: str
    credits_spent: int
    balance: int
    already_unlocked: bool
