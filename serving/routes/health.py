"""Liveness and which model serves."""

import math

from fastapi import APIRouter

from features.freshness import feature_freshness
from serving.deps import StateDep
from serving.schemas import FreshnessPublic, HealthPublic

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthPublic)
def health(state: StateDep) -> HealthPublic:
    """Whether the app is up, and which registry version of the model serves."""
    model = state.models.current
    return HealthPublic(
        status="ok" if model else "degraded",
        model_name=state.settings.model_name,
        model_version=model.label if model else None,
        cache="redis" if state.settings.redis_url else "memory",
        database=state.platform.engine.dialect.name,
    )


@router.get("/health/features", response_model=FreshnessPublic)
def feature_freshness_route(state: StateDep) -> FreshnessPublic:
    """Age in seconds of the newest online value of each feature view (null: never materialized)."""
    ages = feature_freshness(state.store)
    return FreshnessPublic(views={view: None if math.isinf(age) else round(age, 1) for view, age in ages.items()})


@router.get("/ping", include_in_schema=False)
async def ping() -> dict[str, str]:
    """A trivial endpoint: the floor the cached recommendation path is measured against."""
    return {"status": "ok"}
