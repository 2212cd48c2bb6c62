"""Content items over HTTP: browse, read (premium gated), create, edit, upload media, unlock with credits."""

import itertools
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from platform_api.auth.ownership import get_owned
from platform_api.boundary import ItemPathId
from platform_api.catalogue.tables import ContentItem
from platform_api.content import service
from platform_api.content.deps import ObjectStoreDep
from platform_api.content.schemas import (
    ContentCard,
    ContentCreate,
    ContentPublic,
    ContentsPublic,
    ContentUpdate,
    Kind,
    MediaPublic,
    UnlockPublic,
)
from platform_api.deps import CurrentUser, PlatformDep, SessionDep, TrainerUser
from platform_api.entitlements.service import UNLOCK_COST_CREDITS, get_status, unlock_item
from platform_api.errors import ERROR_SCHEMA, ApiError
from platform_api.events.schemas import Level
from platform_api.pagination import DEFAULT_LIMIT, MAX_LIMIT, Cursor, decode_cursor, encode_cursor
from platform_api.storage.base import ObjectNotFound

router = APIRouter(prefix="/v1/content", tags=["content"])


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error responses a route documents, each in the one error shape."""
    return {code: ERROR_SCHEMA for code in codes}


# Room for the multipart envelope (boundaries, part headers) around the file itself.
MULTIPART_SLACK = 64 * 1024

Message = MutableMapping[str, Any]


def card(item: ContentItem) -> ContentCard:
    return ContentCard(
        id=item.id,
        kind=item.kind,
        title=item.title,
        category=item.category,
        level=item.level,
        equipment=list(item.equipment),
        primary_muscles=list(item.primary_muscles),
        duration_min=item.duration_min,
        premium=item.premium,
        status=item.status,
        source=item.source,
        trainer_id=item.trainer_id,
    )


def detail(item: ContentItem) -> ContentPublic:
    media = (
        MediaPublic(
            content_type=item.media_type or "application/octet-stream",
            bytes=item.media_bytes or 0,
            url=f"/v1/content/{item.id}/media",
        )
        if item.media_key
        else None
    )
    return ContentPublic(
        **card(item).model_dump(),
        description=item.description,
        secondary_muscles=list(item.secondary_muscles),
        exercise_ids=list(item.exercise_ids),
        mechanic=item.mechanic,
        force=item.force,
        media=media,
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


def _owned(session: SessionDep, content_id: ItemPathId, trainer: TrainerUser) -> ContentItem:
    return get_owned(session, ContentItem, content_id, trainer, owner_attr="trainer_id", what="content item")


def _limited(receive: Callable[[], Awaitable[Message]], limit: int) -> Callable[[], Awaitable[Message]]:
    """A receive channel that fails with 413 once the body passes `limit` bytes (also without Content-Length)."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > limit:
            raise ApiError(413, f"the upload is larger than {limit - MULTIPART_SLACK} bytes")
        return message

    return wrapped


@router.get("", response_model=ContentsPublic, responses=errors(400, 401, 422))
def list_content(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Cursor = None,
    kind: Kind | None = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    level: Level | None = None,
    premium: bool | None = None,
    trainer_id: Annotated[str | None, Query(max_length=64)] = None,
    mine: Annotated[bool, Query(description="the calling trainer's own items, pending ones included")] = False,
) -> ContentsPublic:
    """Browse ready content items (catalogue and trainers'), filtered, in a stable id order."""
    after = decode_cursor(cursor, size=1)
    filters = service.ContentFilter(
        kind=kind, category=category, level=level, premium=premium, trainer_id=trainer_id, mine=mine
    )
    rows, count, last = service.list_content(
        session, user=user, filters=filters, limit=limit, after=str(after[0]) if after else None
    )
    return ContentsPublic(
        data=[card(i) for i in rows], count=count, next_cursor=encode_cursor([last]) if last else None
    )


@router.post("", status_code=201, response_model=ContentPublic, responses=errors(401, 403, 422))
def create_content(body: ContentCreate, trainer: TrainerUser, session: SessionDep) -> ContentPublic:
    """Create a content item (trainers); it stays pending until its media file is uploaded."""
    return detail(service.create_content(session, trainer_id=trainer.id, body=body))


@router.get("/{content_id}", response_model=ContentPublic, responses=errors(401, 403, 404))
def get_content(content_id: ItemPathId, user: CurrentUser, session: SessionDep) -> ContentPublic:
    """Read a content item in full; premium items need a trial, subscription or credit unlock (403)."""
    item = service.get_visible(session, item_id=content_id, user=user)
    service.check_access(session, item=item, user=user)
    return detail(item)


@router.patch("/{content_id}", response_model=ContentPublic, responses=errors(401, 403, 404, 422))
def update_content(
    content_id: ItemPathId, body: ContentUpdate, trainer: TrainerUser, session: SessionDep
) -> ContentPublic:
    """Edit one of the calling trainer's content items (404 for anyone else's)."""
    return detail(service.update_content(session, item=_owned(session, content_id, trainer), body=body))


@router.put(
    "/{content_id}/media",
    response_model=ContentPublic,
    responses=errors(400, 401, 403, 404, 413, 415, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": "the media; its type is read from its bytes",
                            }
                        },
                    }
                }
            },
        }
    },
)
async def upload_media(
    content_id: ItemPathId,
    request: Request,
    trainer: TrainerUser,
    session: SessionDep,
    platform: PlatformDep,
    store: ObjectStoreDep,
) -> ContentPublic:
    """Upload an item's media file (size limit 413, type sniffed from the bytes 415); the item becomes ready."""
    item = await run_in_threadpool(_owned, session, content_id, trainer)
    limit = platform.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + MULTIPART_SLACK:
        raise ApiError(413, f"the upload is larger than {limit} bytes")
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(415, "send the file as multipart/form-data in a part named 'file'")
    limited = Request(request.scope, receive=_limited(request.receive, limit + MULTIPART_SLACK))
    form = await limited.form(max_files=1, max_fields=10)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ApiError(422, "a part named 'file' with the media is required")
        if upload.size is not None and upload.size > limit:
            raise ApiError(413, f"the file is larger than {limit} bytes")
        updated = await run_in_threadpool(
            service.attach_media, session, item=item, store=store, data=upload.file, max_bytes=limit
        )
    finally:
        await form.close()
    return detail(updated)


@router.get(
    "/{content_id}/media",
    response_class=StreamingResponse,
    responses={
        **errors(401, 403, 404),
        200: {"description": "the media file", "content": {"application/octet-stream": {}}},
    },
)
def download_media(
    content_id: ItemPathId, user: CurrentUser, session: SessionDep, store: ObjectStoreDep
) -> StreamingResponse:
    """Stream an item's media file; premium media need an entitlement (403)."""
    item = service.get_visible(session, item_id=content_id, user=user)
    service.check_access(session, item=item, user=user)
    chunks = service.media_chunks(store, item=item)
    try:
        first = next(chunks, b"")
    except ObjectNotFound as exc:
        raise ApiError(404, "the media file is missing from storage") from exc
    return StreamingResponse(
        itertools.chain([first], chunks),
        media_type=item.media_type,
        headers={"Content-Length": str(item.media_bytes)} if item.media_bytes else None,
    )


@router.post("/{content_id}/unlock", response_model=UnlockPublic, responses=errors(401, 402, 404, 409))
def unlock(content_id: ItemPathId, user: CurrentUser, session: SessionDep) -> UnlockPublic:
    """Unlock a premium item with credits (402 when short); unlocking again costs nothing."""
    item = service.get_visible(session, item_id=content_id, user=user)
    if not item.premium:
        raise ApiError(409, "this item is free; nothing to unlock", code="not_premium")
    entry, charged = unlock_item(session, user_id=user.id, item_id=item.id)
    return UnlockPublic(
        item_id=item.id,
        credits_spent=UNLOCK_COST_CREDITS if charged else 0,
        balance=get_status(session, user_id=user.id).credits,
        already_unlocked=not charged,
    )
