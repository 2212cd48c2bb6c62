"""GET a user's top-k recommendations.

This is the hot path: a cached answer costs tens of microseconds of our code, and
FastAPI's per-parameter and per-dependency resolution cost several times that. So the
route reads its parameters and caller itself, with the same rules and error shape, and
declares them for the OpenAPI document by hand.
"""

import re

from fastapi import APIRouter, Request, Response

from platform_api.errors import ERROR_SCHEMA, ApiError
from serving.auth import ensure_can_read, reader
from serving.ranking.path import Recommender
from serving.schemas import RecommendationsPublic

router = APIRouter(prefix="/v1", tags=["recommendations"])

MAX_K = 50
SURFACE = re.compile(r"^[a-z_]{1,32}$")
PARAMETERS = [
    {
        "name": "user_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1, "maxLength": 64},
        "example": "u-00001",
    },
    {
        "name": "k",
        "in": "query",
        "description": "how many items",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 10},
    },
    {
        "name": "surface",
        "in": "query",
        "description": "where they are shown",
        "schema": {"type": "string", "maxLength": 32, "pattern": SURFACE.pattern, "default": "home"},
    },
    {
        "name": "explain",
        "in": "query",
        "description": "add each item's largest feature contributions to its score (never cached)",
        "schema": {"type": "boolean", "default": False},
    },
]
BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def _invalid(loc: str, msg: str) -> ApiError:
    return ApiError(422, f"{loc}: {msg}", details=[{"loc": loc, "msg": msg, "type": "value_error"}])


def parse_request(request: Request) -> tuple[str, int, str, bool]:
    """(user_id, k, surface, explain) validated like the OpenAPI parameters say."""
    user_id = request.path_params["user_id"]
    if not 1 <= len(user_id) <= 64:
        raise _invalid("path.user_id", "must be 1 to 64 characters")
    raw_k = request.query_params.get("k", "10")
    if not raw_k.isdigit() or not 1 <= int(raw_k) <= MAX_K:
        raise _invalid("query.k", f"must be a whole number from 1 to {MAX_K}")
    surface = request.query_params.get("surface", "home")
    if not SURFACE.match(surface):
        raise _invalid("query.surface", "must be 1 to 32 lowercase letters or underscores")
    explain = BOOLEANS.get(request.query_params.get("explain", "false").lower())
    if explain is None:
        raise _invalid("query.explain", "must be true or false")
    return user_id, int(raw_k), surface, explain


@router.get(
    "/users/{user_id}/recommendations",
    response_model=RecommendationsPublic,
    responses={401: ERROR_SCHEMA, 403: ERROR_SCHEMA, 404: ERROR_SCHEMA, 422: ERROR_SCHEMA, 503: ERROR_SCHEMA},
    openapi_extra={"parameters": PARAMETERS, "security": [{"APIKeyHeader": []}, {"HTTPBearer": []}]},
)
async def get_recommendations(request: Request) -> Response:
    """A user's top-k items, scored by the champion model and cached for a few minutes (popularity if it cannot)."""
    user_id, k, surface, explain = parse_request(request)
    principal = await reader(request)
    ensure_can_read(principal, user_id)
    recommender: Recommender = request.app.state.serving.recommender
    body = await recommender.answer(user_id, k=k, surface=surface, explain=explain)
    return Response(body, media_type="application/json")
