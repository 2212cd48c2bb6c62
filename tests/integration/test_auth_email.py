"""The email adapter's contract, run against every implementation: the dev mailbox (on SQLite and
PostgreSQL) and SMTP (against a real local SMTP server, aiosmtpd)."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Inbox, free_port

from platform_api.config import PlatformSettings
from platform_api.email.base import EmailError, EmailSender, OutgoingEmail, try_send
from platform_api.email.dev import DevMailbox, list_messages
from platform_api.email.factory import make_email_sender
from platform_api.email.smtp import SmtpEmailSender
from platform_api.runtime import Platform, open_platform

SENDER = "fitrec <no-reply@fitrec.test>"


@pytest.fixture
def platform(db_url: str, tmp_path: Path) -> Iterator[Platform]:
    p = open_platform(PlatformSettings(FITREC_DATA_DIR=tmp_path, DATABASE_URL=db_url))
    yield p
    p.close()


def received(kind: str, sender: EmailSender, platform: Platform, inbox: Inbox) -> list[tuple[str, str, str]]:
    if kind == "smtp":
        # SMTP carries CRLF line ends on the wire.
        return [(m["To"], m["Subject"], m.get_content().replace("\r\n", "\n").strip()) for m in inbox.messages]
    with platform.sessions() as session:
        rows, _ = list_messages(session)
    return [(r.recipient, r.subject, r.body.strip()) for r in reversed(rows)]


@pytest.mark.parametrize("kind", ["dev", "smtp"])
def test_sender_contract(kind: str, platform: Platform, smtp_server: tuple[str, Inbox]) -> None:
    url, inbox = smtp_server
    sender = make_email_sender(url if kind == "smtp" else "dev://", sender=SENDER, sessions=platform.sessions)
    assert isinstance(sender, SmtpEmailSender if kind == "smtp" else DevMailbox)
    sender.send(OutgoingEmail(to="ada@example.com", subject="Hello", body="first ünïcode line\nhttps://x.test/a?b=c"))
    sender.send(OutgoingEmail(to="bob@example.com", subject="Second", body="two"))
    assert received(kind, sender, platform, inbox) == [
        ("ada@example.com", "Hello", "first ünïcode line\nhttps://x.test/a?b=c"),
        ("bob@example.com", "Second", "two"),
    ]
    if kind == "smtp":
        assert inbox.messages[0]["From"] == SENDER


def test_dev_mailbox_lists_newest_first_per_recipient(platform: Platform) -> None:
    box = DevMailbox(platform.sessions, sender=SENDER)
    for i in range(3):
        box.send(OutgoingEmail(to="ada@example.com" if i != 1 else "bob@example.com", subject=f"m{i}", body="."))
    with platform.sessions() as session:
        rows, total = list_messages(session, recipient="ada@example.com", limit=1)
    assert total == 2 and [r.subject for r in rows] == ["m2"]


def test_smtp_failure_is_an_email_error_and_try_send_reports_it() -> None:
    sender = SmtpEmailSender(f"smtp://127.0.0.1:{free_port()}", sender=SENDER, timeout_s=2)  # nobody listens
    message = OutgoingEmail(to="ada@example.com", subject="x", body="y")
    with pytest.raises(EmailError, match="SMTP delivery"):
        sender.send(message)
    assert try_send(sender, message) is False


def test_sender_choice_by_url() -> None:
    smtp = SmtpEmailSender("smtps://mailer%40x.test:p%40ss@mail.x.test?starttls=false", sender=SENDER)
    assert (smtp.host, smtp.port, smtp.implicit_tls, smtp.username, smtp.password) == (
        "mail.x.test",
        465,
        True,
        "mailer@x.test",
        "p@ss",
    )
    assert SmtpEmailSender("smtp://h:2525?starttls=true", sender=SENDER).starttls
    with pytest.raises(ValueError, match="scheme"):
        make_email_sender("sendgrid://key", sender=SENDER, sessions=None)  # type: ignore[arg-type]
