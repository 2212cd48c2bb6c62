"""Choose the email sender by the URL scheme of the settings."""

from urllib.parse import urlsplit

from sqlalchemy.orm import Session, sessionmaker

from platform_api.email.base import EmailSender
from platform_api.email.dev import DevMailbox
from platform_api.email.smtp import SmtpEmailSender


def make_email_sender(url: str, *, sender: str, sessions: sessionmaker[Session]) -> EmailSender:
    scheme = urlsplit(url).scheme
    if scheme == "dev":
        return DevMailbox(sessions, sender=sender)
    if scheme in ("smtp", "smtps"):
        return SmtpEmailSender(url, sender=sender)
    raise ValueError(f"unsupported email URL scheme {scheme!r}: use dev:// or smtp[s]://host:port")
