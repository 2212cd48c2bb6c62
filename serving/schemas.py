"""Response and request models of the serving API."""

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from serving.ranking.schemas import RecommendationPublic


class RecommendationsPublic(BaseModel):
    data: list[RecommendationPublic]
    count: int
    user_id: str
    request_id: str
    model_version: str = Field(
        description='the registry version that ranked the answer ("v3"), or the fallback that served it '
        '("fallback:popularity": the catalogue\'s most popular items, when the model cannot rank)'
    )
    arm: str = Field(description="the A/B arm that served the user: champion or challenger", examples=["champion"])
    cached: bool
    fallback_reason: str | None = Field(
        None,
        description="null when the model ranked the answer; otherwise why a fallback served it: "
        "model_unavailable (no loadable model), features_unavailable (online features missing or unreachable), "
        "ranking_timeout, ranking_failed",
        examples=[None, "features_unavailable"],
    )

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
                            "reason": "Matches your goal: strength",
                        }
                    ],
                    "count": 1,
                    "user_id": "u-00042",
                    "request_id": "3f0c…",
                    "model_version": "v3",
                    "arm": "champion",
                    "cached": False,
                    "fallback_reason": None,
                }
            ]
        }
    }


Status = Literal["ok", "degraded", "down"]


class CheckPublic(BaseModel):
    status: Status = Field(description="ok; degraded (works, but worse); down (unusable: a fallback stands in)")
    latency_ms: float = Field(description="how long the check took", examples=[0.4])
    detail: str | None = Field(None, description="what is wrong, or what was found", examples=["v3"])


class HealthPublic(BaseModel):
    status: Status = Field(
        examples=["ok"],
        description="ok: every dependency is fine; degraded: answers come from fallbacks somewhere; "
        "down (HTTP 503): the platform database is unreachable, so no request can be authorised or served",
    )
    checks: dict[str, CheckPublic] = Field(description="database, cache, model, features")
    model_name: str
    model_version: str | None = Field(description="registry version serving now; null while popularity serves")
    cache: str = Field(examples=["redis", "memory"])
    database: str = Field(examples=["postgresql", "sqlite"])


class LivePublic(BaseModel):
    status: Literal["ok"] = "ok"


class FreshnessPublic(BaseModel):
    views: dict[str, float | None] = Field(examples=[{"user_workout_stats": 412.5, "item_catalogue": 3600.0}])


FeedbackAction = Literal["click", "dismiss", "enroll", "start", "complete"]


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "request_id": "9f2c…",
                    "item_id": "plan-build-strength-beginner-home",
                    "action": "click",
                    "user_id": "u-00042",
                }
            ]
        },
    )

    request_id: str = Field(min_length=1, max_length=64, description="the request_id of the recommendations answer")
    item_id: str = Field(min_length=1, max_length=128, description="the recommended item acted on")
    action: FeedbackAction = Field(
        description="click; dismiss (not for me); enroll (in the plan), start or complete (its workout)"
    )
    user_id: str = Field(min_length=1, max_length=64, description="the user the recommendations were for")
    occurred_at: AwareDatetime | None = Field(None, description="when the user acted (default: when it arrives)")


class FeedbackPublic(BaseModel):
    event_id: str = Field(description="the event's id: the same request_id, item and action always give this id")
    event_type: str = Field(examples=["recommendation.clicked", "recommendation.dismissed", "recommendation.converted"])
    request_id: str
    item_id: str
    action: FeedbackAction
    user_id: str
    position: int | None = Field(description="the item's place in the slate; null when the slate was not known yet")
    occurred_at: datetime
    duplicate: bool = Field(description="true when this feedback had been recorded before (a retry): stored once")


class SimilarItemsPublic(BaseModel):
    item_id: str
    data: list[RecommendationPublic]
    count: int
    model_version: str | None = Field(description="the champion version whose item-to-item notion answered")


class ArmPublic(BaseModel):
    alias: str
    version: str | None = Field(description='the registry version serving this arm ("v3"); null: none loaded')
    share: float = Field(description="share of users this arm serves")
    problem: str | None = Field(None, description="why the alias's version is not the one serving, if so")


class ModelPublic(BaseModel):
    model_name: str
    experiment: str
    arms: dict[str, ArmPublic]
