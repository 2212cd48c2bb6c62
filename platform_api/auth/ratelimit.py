"""Login rate limiting per account and per client address, over a sliding window.

Backed by the platform database, not process memory: the API runs as several worker processes
(and instances), and an in-process counter would multiply the allowance by their number and
forget it on every restart. A login costs an Argon2 hash anyway, so one indexed count is cheap.

Only failures count. An attempt is recorded as a failure *before* the password is checked and
committed at once, then cleared on success, so concurrent guesses see each other; the remaining
race (between the count and that commit) is a few milliseconds wide.
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from platform_api.auth.tables import LoginAttempt
from platform_api.errors import ApiError


@dataclass(frozen=True)
class LoginRateLimiter:
    window: timedelta
    max_per_account: int
    max_per_address: int

    @staticmethod
    def account_key(email: str) -> str:
        return f"account:{email.strip().lower()}"[:400]

    @staticmethod
    def address_key(address: str) -> str:
        return f"address:{address}"[:400]

    def _keys(self, email: str, address: str | None) -> list[tuple[str, int]]:
        keys = [(self.account_key(email), self.max_per_account)]
        if address:
            keys.append((self.address_key(address), self.max_per_address))
        return keys

    def retry_after(self, session: Session, *, key: str, limit: int, now: datetime) -> int | None:
        """Seconds until `key` may try again, or None if it is under its limit."""
        times = session.scalars(
            select(LoginAttempt.attempted_at)
            .where(
                LoginAttempt.key == key,
                LoginAttempt.attempted_at > now - self.window,
                LoginAttempt.succeeded.is_(False),
            )
            .order_by(LoginAttempt.attempted_at)
        ).all()
        if len(times) < limit:
            return None
        # The window must drop len - limit + 1 failures before the count is under the limit again.
        frees_at = times[len(times) - limit] + self.window
        return max(1, math.ceil((frees_at - now).total_seconds()))

    def begin_attempt(
        self, session: Session, *, email: str, address: str | None, now: datetime | None = None
    ) -> list[int]:
        """Refuse with 429 when over a limit; else record the attempt as a failure and commit."""
        now = now or datetime.now(UTC)
        for key, limit in self._keys(email, address):
            wait = self.retry_after(session, key=key, limit=limit, now=now)
            if wait is not None:
                what = "this account" if key.startswith("account:") else "this address"
                raise ApiError(
                    429, f"too many failed sign-ins for {what}; retry in {wait} s", headers={"Retry-After": str(wait)}
                )
        attempts = [LoginAttempt(key=key, attempted_at=now, succeeded=False) for key, _ in self._keys(email, address)]
        session.add_all(attempts)
        # Old rows of these keys are useless to the window; prune them while here.
        session.execute(
            delete(LoginAttempt).where(
                LoginAttempt.key.in_([k for k, _ in self._keys(email, address)]),
                LoginAttempt.attempted_at <= now - self.window,
            )
        )
        session.commit()
        return [a.id for a in attempts]

    def succeeded(self, session: Session, *, email: str, attempt_ids: list[int]) -> None:
        """A correct password resets the account's failures; the address keeps its history (minus this one)."""
        session.execute(delete(LoginAttempt).where(LoginAttempt.key == self.account_key(email)))
        session.execute(update(LoginAttempt).where(LoginAttempt.id.in_(attempt_ids)).values(succeeded=True))
