"""The dev mailbox over HTTP, for admins (the embedded profile keeps sent mail here)."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from platform_api.deps import AdminUser, SessionDep
from platform_api.email.dev import list_messages
from platform_api.errors import ERROR_SCHEMA

router = APIRouter(prefix="/v1/admin/mailbox", tags=["admin"])


class MailboxMessagePublic(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "9a1e...",
                    "sender": "fitrec <no-reply@fitrec.local>",
                    "recipient": "ada@example.com",
                    "subject": "Confirm your email for fitrec",
                    "body": "Welcome to fitrec! ...",
                    "sent_at": "2026-11-20T18:30:00Z",
                }
            ]
        }
    )

    id: str
    sender: str
    recipient: str
    subject: str
    body: str
    sent_at: datetime


class MailboxMessagesPublic(BaseModel):
    data: list[MailboxMessagePublic]
    count: int


@router.get("", response_model=MailboxMessagesPublic, responses={401: ERROR_SCHEMA, 403: ERROR_SCHEMA})
def list_mailbox(
    _: AdminUser,
    session: SessionDep,
    to: Annotated[str | None, Query(max_length=320, description="only mail to this address")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> MailboxMessagesPublic:
    """Messages sent through the dev mailbox, newest first (empty when email goes out by SMTP)."""
    rows, total = list_messages(session, recipient=to, limit=limit)
    return MailboxMessagesPublic(
        data=[
            MailboxMessagePublic(
                id=m.id, sender=m.sender, recipient=m.recipient, subject=m.subject, body=m.body, sent_at=m.sent_at
            )
            for m in rows
        ],
        count=total,
    )
