"""The email Protocol every sender implements."""

import logging
from dataclasses import dataclass
from typing import Protocol

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutgoingEmail:
    to: str
    subject: str
    body: str  # plain text


class EmailSender(Protocol):
    def send(self, message: OutgoingEmail) -> None:
        """Deliver one message or raise EmailError."""
        ...


class EmailError(Exception):
    """The message could not be handed over for delivery."""


def try_send(sender: EmailSender, message: OutgoingEmail) -> bool:
    """Send after the write committed; a mail outage must not undo or fail the write (the user can ask again)."""
    try:
        sender.send(message)
    except EmailError:
        logger.exception("email to %s not sent", message.to)
        return False
    return True
