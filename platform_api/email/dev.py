"""The embedded default: a mailbox in the platform database, listed by admins at /v1/admin/mailbox."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from platform_api.db import session_scope
from platform_api.email.base import OutgoingEmail
from platform_api.email.tables import MailboxMessage


class DevMailbox:
    def __init__(self, sessions: sessionmaker[Session], *, sender: str) -> None:
        self.sessions = sessions
        self.sender = sender

    def send(self, message: OutgoingEmail) -> None:
        # Its own transaction, like a real mail server: the caller has committed its write already.
        with session_scope(self.sessions) as session:
            session.add(
                MailboxMessage(
                    id=str(uuid.uuid4()),
                    sender=self.sender,
                    recipient=message.to,
                    subject=message.subject,
                    body=message.body,
                    sent_at=datetime.now(UTC),
                )
            )


def list_messages(
    session: Session, *, recipient: str | None = None, limit: int = 50
) -> tuple[list[MailboxMessage], int]:
    """Newest first, optionally for one recipient; with the total count."""
    where = [MailboxMessage.recipient == recipient] if recipient else []
    total = session.scalar(select(func.count()).select_from(MailboxMessage).where(*where)) or 0
    rows = session.scalars(
        select(MailboxMessage).where(*where).order_by(MailboxMessage.sent_at.desc(), MailboxMessage.id).limit(limit)
    ).all()
    return list(rows), total
