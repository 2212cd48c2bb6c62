"""Feedback on served recommendations: checked against the request's slate, stored once as an event.

The request id itself was checked before (it is signed for the user: serving.ranking.request_ids).
The slate is looked up where it is known: this process's served log (just served) or the impressions
already loaded into the event log (served earlier, or by another replica). When neither knows it,
the feedback is stored without a position; the request_id still joins it to its impressions.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from platform_api.errors import ApiError
from platform_api.events.ingest import ingest
from platform_api.events.tables import EventLog
from serving.ranking.impressions import served_slate
from serving.ranking.served_log import ServedSlate

CONVERTED = "recommendation.converted"
EVENT_TYPES = {
    "click": "recommendation.clicked",
    "dismiss": "recommendation.dismissed",
    "enroll": CONVERTED,
    "start": CONVERTED,
    "complete": CONVERTED,
}
# Actions after which the user's cached slates are stale: the item should not come back (or is taken up).
INVALIDATES = frozenset({"dismiss", "enroll", "complete"})
# Feedback ids derive from (request_id, item_id, action): a client's retry is the same event.
NAMESPACE = uuid.UUID("0d7f3b8e-5a41-4c1f-b2a9-6e3c9d18f4a7")


@dataclass(frozen=True)
class Recorded:
    event_id: str
    event_type: str
    position: int | None
    occurred_at: datetime
    duplicate: bool


def feedback_id(*, request_id: str, item_id: str, action: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{request_id}:{item_id}:{action}"))


def record_feedback(
    session: Session,
    *,
    request_id: str,
    item_id: str,
    action: str,
    user_id: str,
    occurred_at: datetime | None,
    find_served: Callable[[str], ServedSlate | None],
    max_positions: int,
) -> Recorded:
    """Store the feedback event (422 when the item was not in a known slate or the event fails the contract)."""
    slate = find_served(request_id) or served_slate(session, request_id=request_id, max_positions=max_positions)
    position = None if slate is None else slate.position(item_id)
    if slate is not None and position is None:
        msg = "was not among the items of that recommendation request"
        raise ApiError(
            422, f"body.item_id: {msg}", details=[{"loc": "body.item_id", "msg": msg, "type": "value_error"}]
        )
    event_type = EVENT_TYPES[action]
    properties: dict[str, Any] = {"request_id": request_id, "position": position}
    if slate is not None:
        properties |= {"model_version": slate.model_version, "arm": slate.arm, "surface": slate.surface}
    if event_type == CONVERTED:
        properties["action"] = action
    event_id = feedback_id(request_id=request_id, item_id=item_id, action=action)
    at = occurred_at or datetime.now(UTC)
    raw = {
        "event_id": event_id,
        "event_type": event_type,
        "user_id": user_id,
        "item_id": item_id,
        "occurred_at": at.isoformat(),
        "properties": properties,
    }
    result = ingest(session, raw=[raw])
    if result.rejected:
        errors = result.rejected[0].errors
        raise ApiError(422, f"{errors[0]['loc']}: {errors[0]['msg']}", details=errors)
    session.commit()
    duplicate = result.duplicates == 1
    if duplicate:
        stored = session.get(EventLog, event_id)
        at = stored.occurred_at if stored is not None else at
    return Recorded(event_id=event_id, event_type=event_type, position=position, occurred_at=at, duplicate=duplicate)
