"""Event ingestion over HTTP: the same code path the simulator and importers use."""

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from platform_api.auth.principal import Principal
from platform_api.deps import CurrentPrincipal, SessionDep
from platform_api.errors import ERROR_SCHEMA, ApiError
from platform_api.events.ingest import ingest

router = APIRouter(prefix="/v1/events", tags=["events"])

MAX_BATCH = 10_000
# A full batch of typical events is about 3.5 MB of JSON; the input guard refuses larger bodies (413).
EVENT_BATCH_BYTES = 6 * 1024 * 1024


class EventBatchIn(BaseModel):
    events: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        examples=[
            [
                {
                    "event_id": "0b5f8c1e-8f0c-4d43-9a59-2b1f1f0b3c11",
                    "event_type": "workout.completed",
                    "user_id": "u-00042",
                    "item_id": "plan-build-strength-beginner-bodyweight",
                    "occurred_at": "2026-11-20T18:30:00Z",
                    "properties": {
                        "session_id": "s-1",
                        "duration_min": 42,
                        "total_sets": 15,
                        "total_reps": 180,
                        "calories": 310,
                        "rpe": 7,
                    },
                }
            ]
        ],
    )


class EventBatchPublic(BaseModel):
    received: int
    stored: int
    duplicates: int


WRITE_SCOPE = "events:write"


def ensure_can_write(principal: Principal, events: list[dict[str, Any]]) -> None:
    """A service with events:write, an admin, or a user sending only their own events."""
    if principal.has_scope(WRITE_SCOPE) or principal.is_admin:
        return
    if principal.kind == "service":
        raise ApiError(403, f"API key scope {WRITE_SCOPE!r} required", code="insufficient_scope")
    if any(e.get("user_id") != principal.user_id for e in events):
        raise ApiError(403, "users may only send their own events (user_id must be yours)")


@router.post(
    "",
    status_code=202,
    response_model=EventBatchPublic,
    responses={401: ERROR_SCHEMA, 403: ERROR_SCHEMA, 422: ERROR_SCHEMA},
)
def post_events(batch: EventBatchIn, session: SessionDep, principal: CurrentPrincipal) -> EventBatchPublic:
    """Ingest a batch of events: all valid events are stored once per event_id, or none is."""
    ensure_can_write(principal, batch.events)
    result = ingest(session, raw=batch.events)
    if result.rejected:
        session.rollback()
        first = result.rejected[0]
        raise ApiError(
            422,
            f"{len(result.rejected)} of {result.received} events are malformed; nothing was stored "
            f"(first: event {first.index}: {first.errors[0]['loc']}: {first.errors[0]['msg']})",
            details=[{"index": r.index, "event_id": r.event_id, "errors": r.errors} for r in result.rejected],
        )
    session.commit()
    return EventBatchPublic(received=result.received, stored=result.stored, duplicates=result.duplicates)
