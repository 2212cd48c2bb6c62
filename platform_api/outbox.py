"""Transactional outbox for side effects that leave the database (email).

Events go straight into the event log inside the writer's transaction (`emit_event`).
Email cannot join a database transaction, so the writer stores an outbox row in its
transaction and a relay sends it after commit; a crash in between only delays the mail.
Rows are keyed by a deterministic `dedupe_key`, so a retried write enqueues nothing twice.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from sqlalchemy import ForeignKey, Integer, String, Text, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from platform_api.auth.tables import User
from platform_api.db import Base, UTCDateTime
from platform_api.email.base import EmailSender, OutgoingEmail
from platform_api.events.ingest import store_events
from platform_api.events.schemas import EventIn

MAX_ATTEMPTS = 10


class OutboxMessage(Base):
    __tablename__ = "outbox_message"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # email
    user_id: Mapped[str] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


AddressResolver = Callable[[Session, str], str | None]


def user_email(session: Session, user_id: str) -> str | None:
    user = session.get(User, user_id)
    return user.email if user is not None and user.is_active else None


def enqueue_email(session: Session, *, user_id: str, subject: str, body: str, dedupe_key: str) -> None:
    """Add an email to the outbox in the caller's transaction; a second call with the key is a no-op."""
    values = {
        "id": str(uuid4()),
        "dedupe_key": dedupe_key,
        "kind": "email",
        "user_id": user_id,
        "subject": subject,
        "body": body,
        "created_at": datetime.now(UTC),
        "attempts": 0,
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(OutboxMessage).values(values).on_conflict_do_nothing(index_elements=["dedupe_key"]))


@dataclass(frozen=True)
class RelayResult:
    sent: int
    failed: int
    skipped: int  # no address known for the user


def relay_outbox(
    sessions: sessionmaker[Session],
    *,
    mailer: EmailSender,
    resolve_address: AddressResolver = user_email,
    limit: int = 100,
) -> RelayResult:
    """Send pending mail (at least once); each message is marked sent in its own transaction."""
    sent = failed = skipped = 0
    with sessions() as session:
        ids = list(
            session.scalars(
                select(OutboxMessage.id)
                .where(OutboxMessage.sent_at.is_(None), OutboxMessage.attempts < MAX_ATTEMPTS)
                .order_by(OutboxMessage.created_at)
                .limit(limit)
            )
        )
    for message_id in ids:
        with sessions() as session:
            query = select(OutboxMessage).where(OutboxMessage.id == message_id)
            if session.get_bind().dialect.name == "postgresql":
                # Two relays never send the same row at once; a locked row is another relay's.
                query = query.with_for_update(skip_locked=True)
            msg = session.scalars(query).one_or_none()
            if msg is None or msg.sent_at is not None:
                continue
            address = resolve_address(session, msg.user_id)
            msg.attempts += 1
            if address is None:
                msg.last_error = "no email address for user"
                skipped += 1
            else:
                try:
                    mailer.send(OutgoingEmail(to=address, subject=msg.subject, body=msg.body))
                    msg.sent_at = datetime.now(UTC)
                    msg.last_error = None
                    sent += 1
                except Exception as exc:  # noqa: BLE001 - any transport failure is retried later
                    msg.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                    failed += 1
            session.commit()
    return RelayResult(sent=sent, failed=failed, skipped=skipped)


def event_uuid(key: str) -> UUID:
    """A deterministic event id: a retried write produces the same id, which the event log stores once."""
    return uuid5(NAMESPACE_URL, f"fitrec:{key}")


def emit_event(
    session: Session,
    *,
    key: str,
    event_type: str,
    user_id: str | None,
    occurred_at: datetime,
    item_id: str | None = None,
    properties: dict[str, Any] | None = None,
) -> None:
    """Write one event into the event log, in the caller's transaction (validated by the event contract)."""
    store_events(
        session,
        events=[
            EventIn(
                event_id=event_uuid(key),
                event_type=event_type,
                user_id=user_id,
                item_id=item_id,
                occurred_at=occurred_at,
                properties=properties or {},
            )
        ],
    )
