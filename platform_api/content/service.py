"""Content items: trainers create them (pending), upload the media (ready, `content.ready`),
users browse them; premium items open only with an entitlement.

Catalogue items seeded at start-up live in the same table (source "catalogue", ready).
"""

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO
from uuid import uuid4

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from platform_api.auth.tables import User
from platform_api.catalogue.tables import ContentItem
from platform_api.content.media import SNIFF_BYTES, sniff
from platform_api.content.schemas import ContentCreate, ContentUpdate
from platform_api.entitlements.service import require_premium
from platform_api.errors import ApiError
from platform_api.outbox import emit_event
from platform_api.plans.exercises import unknown_exercises
from platform_api.storage.base import CHUNK, ObjectStore


@dataclass(frozen=True)
class ContentFilter:
    kind: str | None = None
    category: str | None = None
    level: str | None = None
    premium: bool | None = None
    trainer_id: str | None = None
    mine: bool = False  # the caller's own items, pending ones included


def is_manager(item: ContentItem, user: User) -> bool:
    """The trainer who owns the item, or an admin."""
    return user.role == "admin" or (item.trainer_id is not None and item.trainer_id == user.id)


def create_content(
    session: Session, *, trainer_id: str, body: ContentCreate, now: datetime | None = None
) -> ContentItem:
    missing = unknown_exercises(body.exercise_ids)
    if missing:
        raise ApiError(422, f"unknown exercise ids: {', '.join(missing[:10])}", code="unknown_exercise")
    now = now or datetime.now(UTC)
    item = ContentItem(
        id=f"tc-{uuid4().hex[:16]}",
        kind=body.kind,
        title=body.title,
        description=body.description,
        category=body.category,
        level=body.level,
        equipment=list(body.equipment),
        mechanic=body.mechanic,
        force=body.force,
        primary_muscles=list(body.primary_muscles),
        secondary_muscles=list(body.secondary_muscles),
        exercise_ids=list(body.exercise_ids),
        duration_min=body.duration_min,
        premium=body.premium,
        status="pending",
        source="trainer",
        trainer_id=trainer_id,
        created_at=now,
        updated_at=now,
    )
    session.add(item)
    session.commit()
    return item


def update_content(
    session: Session, *, item: ContentItem, body: ContentUpdate, now: datetime | None = None
) -> ContentItem:
    for name, value in body.model_dump(exclude_unset=True).items():
        if value is None:
            raise ApiError(422, f"{name} cannot be null")
        setattr(item, name, list(value) if isinstance(value, list) else value)
    item.updated_at = now or datetime.now(UTC)
    session.commit()
    return item


def get_visible(session: Session, *, item_id: str, user: User) -> ContentItem:
    """The item if the user may see it: ready items to everyone, pending ones to their trainer and admins."""
    item = session.get(ContentItem, item_id)
    if item is None or (item.status != "ready" and not is_manager(item, user)):
        raise ApiError(404, "content item not found")
    return item


def check_access(session: Session, *, item: ContentItem, user: User) -> None:
    """403 for a premium item without a trial, subscription or credit unlock (its trainer and admins pass)."""
    if item.premium and not is_manager(item, user):
        require_premium(session, user_id=user.id, item_id=item.id)


def list_content(
    session: Session, *, user: User, filters: ContentFilter, limit: int, after: str | None = None
) -> tuple[list[ContentItem], int, str | None]:
    where = []
    if filters.mine:
        where.append(ContentItem.trainer_id == user.id)
    else:
        where.append(ContentItem.status == "ready")
    for column, value in (
        (ContentItem.kind, filters.kind),
        (ContentItem.category, filters.category),
        (ContentItem.level, filters.level),
        (ContentItem.premium, filters.premium),
        (ContentItem.trainer_id, filters.trainer_id),
    ):
        if value is not None:
            where.append(column == value)
    count = session.scalar(select(func.count()).select_from(ContentItem).where(*where)) or 0
    query = select(ContentItem).where(*where)
    if after is not None:
        query = query.where(ContentItem.id > after)
    rows = list(session.scalars(query.order_by(ContentItem.id).limit(limit + 1)))
    next_after = rows[limit - 1].id if len(rows) > limit else None
    return rows[:limit], count, next_after


def attach_media(
    session: Session,
    *,
    item: ContentItem,
    store: ObjectStore,
    data: BinaryIO,
    max_bytes: int,
    now: datetime | None = None,
) -> ContentItem:
    """Validate (size 413, type sniffed from the bytes 415), store, and mark the item ready (`content.ready`)."""
    head = data.read(SNIFF_BYTES)
    if not head:
        raise ApiError(422, "the file is empty")
    mime, extension = sniff(head, kind=item.kind)
    digest = hashlib.sha256(head)
    size = len(head)
    while chunk := data.read(CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, f"the file is larger than {max_bytes} bytes")
        digest.update(chunk)
    if size > max_bytes:
        raise ApiError(413, f"the file is larger than {max_bytes} bytes")
    data.seek(0)
    key = f"content/{item.id}/{digest.hexdigest()[:32]}.{extension}"
    store.put(key, data, content_type=mime)
    now = now or datetime.now(UTC)
    old_key = item.media_key
    became_ready = item.status != "ready"
    item.media_key, item.media_type, item.media_bytes = key, mime, size
    item.status = "ready"
    item.updated_at = now
    if became_ready:
        emit_event(
            session,
            key=f"content.ready:{item.id}",
            event_type="content.ready",
            user_id=None,
            item_id=item.id,
            occurred_at=now,
            properties={"kind": item.kind},
        )
    session.commit()
    if old_key and old_key != key:
        store.delete(old_key)  # after commit: a failed commit must not lose the media still referenced
    return item


def media_chunks(store: ObjectStore, *, item: ContentItem) -> Iterator[bytes]:
    if not item.media_key:
        raise ApiError(404, "this content item has no media")
    return store.iter_chunks(item.media_key)
