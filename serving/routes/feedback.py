"""POST feedback on a recommendation: what the user did with an item of a served slate."""

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from platform_api.errors import ERROR_SCHEMA, ApiError
from platform_api.runtime import Platform
from serving.auth import ensure_can_send_feedback, reader
from serving.feedback import INVALIDATES, Recorded, record_feedback
from serving.ranking.path import Recommender
from serving.ranking.served_log import ServedLog
from serving.routes.recommendations import MAX_K
from serving.schemas import FeedbackCreate, FeedbackPublic

router = APIRouter(prefix="/v1", tags=["recommendations"])


@router.post(
    "/recommendations/feedback",
    status_code=201,
    response_model=FeedbackPublic,
    responses={
        200: {"description": "Recorded before (a retry): stored once", "model": FeedbackPublic},
        401: ERROR_SCHEMA,
        403: ERROR_SCHEMA,
        404: ERROR_SCHEMA,
        422: ERROR_SCHEMA,
        503: ERROR_SCHEMA,
    },
    openapi_extra={"security": [{"APIKeyHeader": []}, {"HTTPBearer": []}]},
)
async def post_feedback(feedback: FeedbackCreate, request: Request, response: Response) -> FeedbackPublic:
    """Record a click, dismiss, enroll, start or complete of a recommended item, once per request, item and action."""
    principal = await reader(request)
    ensure_can_send_feedback(principal, feedback.user_id)
    recommender: Recommender = request.app.state.serving.recommender
    if not recommender.request_ids.verify(feedback.request_id, feedback.user_id):
        raise ApiError(404, "recommendation request not found for this user")
    if feedback.item_id not in recommender.catalogue.by_id:
        raise ApiError(404, "item not found")
    recorded = await run_in_threadpool(_record, request.app.state.platform, request.app.state.serving.served, feedback)
    if feedback.action in INVALIDATES:
        await recommender.invalidate(feedback.user_id)
    if recorded.duplicate:
        response.status_code = 200
    return FeedbackPublic(
        event_id=recorded.event_id,
        event_type=recorded.event_type,
        request_id=feedback.request_id,
        item_id=feedback.item_id,
        action=feedback.action,
        user_id=feedback.user_id,
        position=recorded.position,
        occurred_at=recorded.occurred_at,
        duplicate=recorded.duplicate,
    )


def _record(platform: Platform, served: ServedLog, feedback: FeedbackCreate) -> Recorded:
    with platform.sessions() as session:
        return record_feedback(
            session,
            request_id=feedback.request_id,
            item_id=feedback.item_id,
            action=feedback.action,
            user_id=feedback.user_id,
            occurred_at=feedback.occurred_at,
            find_served=served.find,
            max_positions=MAX_K,
        )
