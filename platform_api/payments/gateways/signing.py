"""HMAC-SHA256 webhook signatures with a timestamp, for gateways that are not Stripe.

Header `Webhook-Signature: t=<unix seconds>,v1=<hex hmac(secret, "<t>.<body>")>` — the
same construction as Stripe's, so a captured body cannot be re-signed with another time,
and a replay outside the tolerance window is refused before the event id is even read.
"""

import hashlib
import hmac
import time
from collections.abc import Mapping

from platform_api.payments.gateways.base import InvalidWebhook

HEADER = "Webhook-Signature"


def sign(body: bytes, secret: str, *, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(body: bytes, headers: Mapping[str, str], secret: str, *, tolerance_s: int, now: float | None = None) -> int:
    """The signed timestamp if a v1 signature matches and the timestamp is fresh; InvalidWebhook otherwise."""
    header = next((v for k, v in headers.items() if k.lower() == HEADER.lower()), None)
    if not header:
        raise InvalidWebhook(f"missing {HEADER} header")
    try:
        parts = [item.split("=", 1) for item in header.split(",")]
        timestamp = int(next(v for k, v in parts if k.strip() == "t"))
        signatures = [v for k, v in parts if k.strip() == "v1"]
    except (StopIteration, ValueError) as exc:
        raise InvalidWebhook(f"malformed {HEADER} header") from exc
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise InvalidWebhook("signature does not match")
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance_s:
        raise InvalidWebhook(f"timestamp outside the {tolerance_s} s tolerance (replayed or clock skew)")
    return timestamp
