"""Ingestion: validate envelopes, store each event_id once, report what happened."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from platform_api.events.schemas import EventIn
from platform_api.events.tables import EventLog


@dataclass(frozen=True)
class Rejection:
    index: int
    event_id: str | None
    errors: list[dict[str, Any]]


@dataclass
class IngestResult:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def merge(self, other: "IngestResult") -> None:
        offset = self.received
        self.received += other.received
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.rejected += [Rejection(r.index + offset, r.event_id, r.errors) for r in other.rejected]


def validate_events(raw: Iterable[Mapping[str, Any]]) -> tuple[list[EventIn], list[Rejection]]:
    valid: list[EventIn] = []
    rejected: list[Rejection] = []
    for i, item in enumerate(raw):
        try:
            valid.append(EventIn.model_validate(item))
        except ValidationError as exc:
            errors = [
                {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False, include_context=False, include_input=False)
            ]
            event_id = item.get("event_id") if isinstance(item, Mapping) else None
            rejected.append(Rejection(i, str(event_id) if event_id else None, errors))
    return valid, rejected


def _insert_ignoring_duplicates(session: Session, rows: list[dict[str, Any]]) -> int:
    dialect = session.get_bind().dialect.name
    stmt: Any  # the two dialects' Insert types share no base with on_conflict_do_nothing
    if dialect == "postgresql":
        stmt = pg_insert(EventLog).on_conflict_do_nothing(index_elements=["event_id"])
    elif dialect == "sqlite":
        stmt = sqlite_insert(EventLog).on_conflict_do_nothing(index_elements=["event_id"])
    else:
        raise RuntimeError(f"unsupported database dialect {dialect!r}: use PostgreSQL or SQLite")
    # executemany with RETURNING: SQLAlchemy batches it into multi-row INSERTs from one
    # cached compiled statement, and RETURNING yields only the rows actually inserted
    # (rowcount is unreliable for batched inserts on psycopg 3).
    result = session.execute(stmt.returning(EventLog.event_id), rows)
    return len(result.all())


def store_events(session: Session, *, events: list[EventIn], received_at: datetime | None = None) -> IngestResult:
    """Insert validated events in the caller's transaction; duplicates are counted, not stored."""
    now = received_at or datetime.now(UTC)
    rows: dict[str, dict[str, Any]] = {}
    for ev in events:
        rows.setdefault(
            str(ev.event_id),
            {
                "event_id": str(ev.event_id),
                "event_type": ev.event_type,
                "user_id": ev.user_id,
                "item_id": ev.item_id,
                "occurred_at": ev.occurred_at,
                "received_at": now,
                "properties": ev.properties,
            },
        )
    stored = _insert_ignoring_duplicates(session, list(rows.values())) if rows else 0
    return IngestResult(received=len(events), stored=stored, duplicates=len(events) - stored)


def ingest(session: Session, *, raw: Sequence[Mapping[str, Any]]) -> IngestResult:
    """Validate and store a batch; malformed events are returned as rejections, never stored."""
    valid, rejected = validate_events(raw)
    result = store_events(session, events=valid)
    result.received = len(raw)
    result.rejected = rejected
    return result
