"""GET a user's top-k recommendations."""

from typing import Annotated

from fastapi import APIRouter, Path, Query

from platform_api.errors import ERROR_SCHEMA
from serving.auth import ReaderDep, ensure_can_read
from serving.deps import RecommenderDep
from serving.schemas import RecommendationsPublic

router = APIRouter(prefix="/v1", tags=["recommendations"])


@router.get(
    "/users/{user_id}/recommendations",
    response_model=RecommendationsPublic,
    responses={401: ERROR_SCHEMA, 403: ERROR_SCHEMA, 404: ERROR_SCHEMA, 422: ERROR_SCHEMA, 503: ERROR_SCHEMA},
)
def get_recommendations(
    recommender: RecommenderDep,
    principal: ReaderDep,
    user_id: Annotated[str, Path(min_length=1, max_length=64, examples=["u-00001"])],
    k: Annotated[int, Query(ge=1, le=50, description="how many items")] = 10,
    surface: Annotated[str, Query(max_length=32, pattern=r"^[a-z_]+$", description="where they are shown")] = "home",
) -> RecommendationsPublic:
    """A user's top-k items, scored by the champion model and cached for a few minutes."""
    ensure_can_read(principal, user_id)
    return recommender.recommend(user_id, k=k, surface=surface)
