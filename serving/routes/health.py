"""Liveness, readiness (each dependency, honestly) and which model serves."""

import math

from fastapi import APIRouter, Response

from features.freshness import feature_freshness
from serving.deps import StateDep
from serving.readiness import readiness
from serving.schemas import FreshnessPublic, HealthPublic, LivePublic

router = APIRouter(tags=["health"])


@router.get("/health/live", response_model=LivePublic)
async def live() -> LivePublic:
    """Whether the process is up and answering (nothing else is checked)."""
    return LivePublic()


@router.get("/health/ready", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
@router.get("/health", response_model=HealthPublic, responses={503: {"model": HealthPublic}})
async def ready(state: StateDep, response: Response) -> HealthPublic:
    """Each dependency's status and latency, and overall ok, degraded or down (503: cannot serve at all)."""
    report = await readiness(state)
    if report.status == "down":
        response.status_code = 503
    return report


@router.get("/health/features", response_model=FreshnessPublic)
def feature_freshness_route(state: StateDep) -> FreshnessPublic:
    """Age in seconds of the newest online value of each feature view (null: never materialized)."""
    ages = feature_freshness(state.store) if state.store is not None else {}
    return FreshnessPublic(views={view: None if math.isinf(age) else round(age, 1) for view, age in ages.items()})


@router.get("/ping", include_in_schema=False)
async def ping() -> dict[str, str]:
    """A trivial endpoint: the floor the cached recommendation path is measured against."""
    return {"status": "ok"}
