"""Work that runs after a response: relaying the email outbox, delivering sandbox webhooks."""

import logging

from platform_api.email.base import EmailSender
from platform_api.outbox import relay_outbox
from platform_api.runtime import Platform

log = logging.getLogger(__name__)


def relay_emails(platform: Platform, mailer: EmailSender) -> None:
    """Send what the committed transaction queued; failures stay queued for the next relay."""
    try:
        relay_outbox(platform.sessions, mailer=mailer)
    except Exception:  # noqa: BLE001 - a background task must not crash the worker; the rows stay pending
        log.exception("email relay failed")
