"""Production email: SMTP (smtp:// with optional STARTTLS, or smtps:// for implicit TLS)."""

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

from platform_api.email.base import EmailError, OutgoingEmail


class SmtpEmailSender:
    def __init__(self, url: str, *, sender: str, timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("SMTP URL must look like smtp[s]://[user:password@]host[:port][?starttls=true]")
        self.implicit_tls = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.starttls = parse_qs(parts.query).get("starttls", ["false"])[0].lower() in ("1", "true", "yes")
        self.sender = sender
        self.timeout_s = timeout_s

    def _message(self, message: OutgoingEmail) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = message.to
        msg["Subject"] = message.subject
        msg["Message-ID"] = make_msgid(domain="fitrec")
        msg.set_content(message.body)
        return msg

    def send(self, message: OutgoingEmail) -> None:
        try:
            if self.implicit_tls:
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout_s, context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with client:
                if self.starttls:
                    client.starttls(context=ssl.create_default_context())
                if self.username:
                    client.login(self.username, self.password or "")
                client.send_message(self._message(message))
        except (smtplib.SMTPException, OSError) as exc:
            raise EmailError(f"SMTP delivery to {self.host}:{self.port} failed: {exc}") from exc
