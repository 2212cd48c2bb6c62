"""Response and request models of the serving API."""

from pydantic import BaseModel, Field


class RecommendationPublic(BaseModel):
    item_id: str
    item_type: str
    title: str
    score: float
    reason: str


class RecommendationsPublic(BaseModel):
    data: list[RecommendationPublic]
    count: int
    user_id: str
    request_id: str
    model_version: str
    cached: bool

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "data": [
                        {
                            "item_id": "plan-build-strength-beginner-home",
                            "item_type": "plan",
                            "title": "Build strength: beginner home plan",
                            "score": 1.73,
                            "reason": "Matches your goal",
                        }
                    ],
                    "count": 1,
                    "user_id": "u-00042",
                    "request_id": "3f0c…",
                    "model_version": "v3",
                    "cached": False,
                }
            ]
        }
    }


class HealthPublic(BaseModel):
    status: str = Field(examples=["ok"])
    model_name: str
    model_version: str | None = Field(description="registry version serving now; null before the first training")
    cache: str = Field(examples=["redis", "memory"])
    database: str = Field(examples=["postgresql", "sqlite"])


class FreshnessPublic(BaseModel):
    views: dict[str, float | None] = Field(examples=[{"user_workout_stats": 412.5, "item_catalogue": 3600.0}])
