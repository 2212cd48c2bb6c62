"""Rate limits of the auth routes, counted in the platform database over sliding windows.

Backed by the platform database, not process memory: the API runs as several worker processes
(and instances), and an in-process counter would multiply the allowance by their number and
forget it on every restart. A login costs an Argon2 hash anyway, so one indexed count is cheap.

Sign-in policy (settings `login_*`; only failures count, over `login_window_s`, 15 min):
- per (account, address), 5 failures: that address waits before trying that account again. This
  stops brute force, and a stranger who types wrong passwords only locks out themselves.
- per address, 30 failures over any accounts: the address waits (credential stuffing, spraying).
- per account, 100 failures from all addresses together: distributed guessing is capped, and the
  account is closed to every address *except* those it signed in from successfully in the last
  `login_known_address_days` (30), so a botnet cannot lock the owner out where they sign in.
A correct password clears its (account, address) failures and marks the address known; it does not
reset the other two counts (one sign-in of the owner must not refill an attacker's budget).

Sign-up and verification resend (settings `signup_*`): every request counts, per client address
(20 an hour) and per email address (3 an hour), each action apart. The email counts whether or not
an account exists, so a 429 says nothing about the address.

An attempt is recorded *before* the work it guards (the password check, the email) and committed at
once, so concurrent requests see each other; the remaining race (between the count and that commit)
is a few milliseconds wide. Behind a proxy the address is the proxy's X-Forwarded-For only when the
proxy is listed in `trusted_proxies` (platform_api.auth.proxies).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from platform_api.auth.tables import LoginAttempt
from platform_api.errors import ApiError

KEY_LENGTH = 400  # LoginAttempt.key


@dataclass(frozen=True)
class Limit:
    key: str
    max: int
    what: str  # completes "too many … ": the 429's message


def _key(*parts: str) -> str:
    return ":".join(parts)[:KEY_LENGTH]


def retry_after(session: Session, *, key: str, limit: int, window: timedelta, now: datetime) -> int | None:
    """Seconds until `key` is under its limit again, or None if it is under it now (counted rows only)."""
    times = session.scalars(
        select(LoginAttempt.attempted_at)
        .where(LoginAttempt.key == key, LoginAttempt.attempted_at > now - window, LoginAttempt.succeeded.is_(False))
        .order_by(LoginAttempt.attempted_at)
    ).all()
    if len(times) < limit:
        return None
    # The window must drop len - limit + 1 attempts before the count is under the limit again.
    frees_at = times[len(times) - limit] + window
    return max(1, math.ceil((frees_at - now).total_seconds()))


def enforce(session: Session, limits: Sequence[Limit], *, window: timedelta, now: datetime) -> None:
    """429 with Retry-After for the first limit reached."""
    for limit in limits:
        wait = retry_after(session, key=limit.key, limit=limit.max, window=window, now=now)
        if wait is not None:
            raise ApiError(429, f"too many {limit.what}; retry in {wait} s", headers={"Retry-After": str(wait)})


def record(session: Session, keys: Sequence[str], *, window: timedelta, now: datetime) -> list[int]:
    """Count one attempt under each key and commit; counted rows that left the window are pruned."""
    attempts = [LoginAttempt(key=key, attempted_at=now, succeeded=False) for key in keys]
    session.add_all(attempts)
    session.execute(
        delete(LoginAttempt).where(
            LoginAttempt.key.in_(keys), LoginAttempt.attempted_at <= now - window, LoginAttempt.succeeded.is_(False)
        )
    )
    session.commit()
    return [a.id for a in attempts]


@dataclass(frozen=True)
class RequestLimiter:
    """Every request of an action (sign-up, resend) counts, per client address and per email address."""

    action: str
    window: timedelta
    max_per_address: int
    max_per_email: int

    def hit(self, session: Session, *, email: str, address: str | None, now: datetime | None = None) -> None:
        """Refuse with 429 when over a limit; else count this request (committed)."""
        now = now or datetime.now(UTC)
        limits = [
            Limit(_key(self.action, "email", email.strip().lower()), self.max_per_email, "requests for this email")
        ]
        if address:
            limits.append(
                Limit(_key(self.action, "address", address), self.max_per_address, "requests from this address")
            )
        enforce(session, limits, window=self.window, now=now)
        record(session, [limit.key for limit in limits], window=self.window, now=now)


@dataclass(frozen=True)
class LoginRateLimiter:
    """The sign-in policy of the module docstring."""

    window: timedelta
    max_per_account_address: int
    max_per_account: int
    max_per_address: int
    known_for: timedelta

    @staticmethod
    def account_key(email: str) -> str:
        return _key("account", email.strip().lower())

    @staticmethod
    def address_key(address: str) -> str:
        return _key("address", address)

    @staticmethod
    def pair_key(email: str, address: str) -> str:
        return _key("account-address", f"{email.strip().lower()}|{address}")

    @classmethod
    def forget_known_addresses(cls, session: Session, *, email: str) -> None:
        """No address keeps the account's exemption (its sign-ins were someone else's). The caller commits."""
        session.execute(
            delete(LoginAttempt).where(
                LoginAttempt.key.startswith(cls.pair_key(email, ""), autoescape=True), LoginAttempt.succeeded.is_(True)
            )
        )

    def is_known(self, session: Session, *, email: str, address: str, now: datetime) -> bool:
        """Whether the account signed in successfully from this address lately."""
        return bool(
            session.scalar(
                select(
                    exists().where(
                        LoginAttempt.key == self.pair_key(email, address),
                        LoginAttempt.succeeded.is_(True),
                        LoginAttempt.attempted_at > now - self.known_for,
                    )
                )
            )
        )

    def begin_attempt(
        self, session: Session, *, email: str, address: str | None, now: datetime | None = None
    ) -> list[int]:
        """Refuse with 429 when over a limit; else record the attempt as a failure and commit."""
        now = now or datetime.now(UTC)
        account = Limit(self.account_key(email), self.max_per_account, "failed sign-ins for this account")
        limits = []
        if address:
            limits += [
                Limit(
                    self.pair_key(email, address),
                    self.max_per_account_address,
                    "failed sign-ins for this account from this address",
                ),
                Limit(self.address_key(address), self.max_per_address, "failed sign-ins from this address"),
            ]
        enforce(session, limits, window=self.window, now=now)
        if not (address and self.is_known(session, email=email, address=address, now=now)):
            enforce(session, [account], window=self.window, now=now)
        return record(session, [account.key, *(limit.key for limit in limits)], window=self.window, now=now)

    def succeeded(
        self,
        session: Session,
        *,
        email: str,
        address: str | None,
        attempt_ids: list[int],
        now: datetime | None = None,
    ) -> None:
        """A correct password: the attempt counts nowhere, the pair's failures are cleared, and the pair's
        row stays as the mark of a known address (older marks of the account expire). The caller commits."""
        now = now or datetime.now(UTC)
        pair = self.pair_key(email, address) if address else None
        session.execute(delete(LoginAttempt).where(LoginAttempt.id.in_(attempt_ids), LoginAttempt.key != pair))
        if pair is None:
            return
        session.execute(delete(LoginAttempt).where(LoginAttempt.key == pair, LoginAttempt.id.not_in(attempt_ids)))
        session.execute(
            update(LoginAttempt)
            .where(LoginAttempt.id.in_(attempt_ids), LoginAttempt.key == pair)
            .values(succeeded=True)
        )
        session.execute(
            delete(LoginAttempt).where(
                LoginAttempt.key.startswith(self.pair_key(email, ""), autoescape=True),
                LoginAttempt.succeeded.is_(True),
                LoginAttempt.attempted_at <= now - self.known_for,
            )
        )
