"""Signals from the worker to every API replica: a user's cached slates are stale, the catalogue changed.

The worker sees events (a completion, a dismissal on another replica, a new trainer video) that API
processes do not; it appends a signal row, and each replica follows the table (`after(seq)` every
second or so) and drops what it caches. One indexed read per replica per poll, whatever the traffic;
works alike on SQLite and PostgreSQL, for the in-process cache and for Redis with its near cache.
"""

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import CursorResult, Integer, String, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from platform_api.db import Base, UTCDateTime

USER = "user"  # key: a user id whose cached slates are stale
CATALOGUE = "catalogue"  # key: None; re-read the catalogue


class CacheSignal(Base):
    __tablename__ = "cache_signal"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    # Never reuse a pruned sequence number (SQLite would, without AUTOINCREMENT): followers go by it.
    __table_args__ = {"sqlite_autoincrement": True}


def emit(session: Session, kind: str, keys: Iterable[str | None]) -> None:
    """Queue signals in the caller's transaction."""
    now = datetime.now(UTC)
    session.add_all(CacheSignal(kind=kind, key=key, at=now) for key in keys)


def latest(session: Session) -> int:
    """The last sequence number: a replica starting now has nothing older to follow."""
    return session.scalar(select(func.max(CacheSignal.seq))) or 0


def after(session: Session, seq: int, *, limit: int = 10_000) -> list[tuple[int, str, str | None]]:
    """Signals after `seq`, oldest first."""
    rows = session.execute(
        select(CacheSignal.seq, CacheSignal.kind, CacheSignal.key)
        .where(CacheSignal.seq > seq)
        .order_by(CacheSignal.seq)
        .limit(limit)
    )
    return [(s, k, key) for s, k, key in rows]


def prune(session: Session, *, older_than: timedelta) -> int:
    """Forget signals every replica has long followed; how many went."""
    cutoff = datetime.now(UTC) - older_than
    result: CursorResult[tuple[()]] = session.execute(delete(CacheSignal).where(CacheSignal.at < cutoff))  # type: ignore[assignment]
    return result.rowcount or 0
