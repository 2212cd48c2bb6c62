"""Item-to-item recommendations and which model versions serve."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from platform_api.boundary import ItemPathId
from platform_api.errors import ERROR_SCHEMA, ApiError
from serving.auth import READ_SCOPE, reader
from serving.deps import StateDep
from serving.ranking.path import Recommender
from serving.schemas import ArmPublic, ModelPublic, RecommendationPublic, SimilarItemsPublic

router = APIRouter(prefix="/v1", tags=["recommendations"])
MAX_K = 50


@router.get(
    "/items/{item_id}/similar",
    response_model=SimilarItemsPublic,
    response_model_exclude_none=True,
    responses={401: ERROR_SCHEMA, 403: ERROR_SCHEMA, 404: ERROR_SCHEMA, 422: ERROR_SCHEMA},
)
async def similar_items(
    item_id: ItemPathId, request: Request, k: Annotated[int, Query(ge=1, le=MAX_K, description="how many")] = 10
) -> SimilarItemsPublic:
    """Items like this one (what people who did it also do; by attributes for items nobody has used yet)."""
    principal = await reader(request)
    if principal.kind == "service" and not principal.has_scope(READ_SCOPE):
        raise ApiError(403, f"API key scope {READ_SCOPE!r} required", code="insufficient_scope")
    recommender: Recommender = request.app.state.serving.recommender
    model = recommender.models.current
    try:
        found = await run_in_threadpool(recommender.path.similar, item_id, k=k, model=model)
    except KeyError:
        raise ApiError(404, "item not found") from None
    data = [RecommendationPublic(**entry) for entry in found]
    return SimilarItemsPublic(
        item_id=item_id, data=data, count=len(data), model_version=model.label if model is not None else None
    )


@router.get("/model", response_model=ModelPublic)
async def serving_model(state: StateDep) -> ModelPublic:
    """Which registry version serves each A/B arm, and each arm's share of users."""
    arms = {}
    for arm, (holder, share) in state.models.arms().items():
        current = holder.current
        arms[arm] = ArmPublic(
            alias=holder.alias, version=current.label if current else None, share=share, problem=holder.problem
        )
    return ModelPublic(model_name=state.settings.model_name, experiment=state.models.experiment, arms=arms)
