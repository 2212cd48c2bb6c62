"""Write transactions that serialise where they must, and retry when the database says so.

PostgreSQL: callers lock the rows they change (`SELECT ... FOR UPDATE`); a deadlock or
serialization failure aborts one transaction, which is retried. SQLite has no row locks:
a write transaction takes the database write lock up front (`BEGIN IMMEDIATE`), so two
read-modify-write transactions can never interleave, and "database is locked" is retried.
"""

import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

T = TypeVar("T")

# SQLSTATEs PostgreSQL uses for "try again": serialization_failure, deadlock_detected.
RETRY_SQLSTATES = frozenset({"40001", "40P01"})


def begin_write(session: Session) -> None:
    """Start the session's transaction as a writer: on SQLite take the write lock now."""
    if session.get_bind().dialect.name != "sqlite":
        return
    conn = session.connection()
    # pysqlite opens its transaction lazily at the first write; reads before this point hold no lock.
    if not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def is_retryable(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate in RETRY_SQLSTATES:
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def run_write(sessions: sessionmaker[Session], work: Callable[[Session], T], *, attempts: int = 8) -> T:
    """Run `work` in a fresh write transaction, commit, retry on lock/serialization failures."""
    with sessions() as session:
        return retry_write(session, lambda: work(session), attempts=attempts)


def retry_write(session: Session, work: Callable[[], T], *, attempts: int = 8) -> T:
    """Like run_write, on a session the caller owns: each attempt begins, works and commits."""
    for attempt in range(attempts):
        try:
            begin_write(session)
            result = work()
            session.commit()
            return result
        except DBAPIError as exc:
            session.rollback()
            if not is_retryable(exc) or attempt == attempts - 1:
                raise
        except BaseException:
            session.rollback()
            raise
        time.sleep(min(0.5, 0.01 * 2**attempt) * random.random())
    raise AssertionError("unreachable")  # pragma: no cover


def for_update(session: Session) -> bool:
    """Whether `SELECT ... FOR UPDATE` means anything on this backend."""
    return session.get_bind().dialect.name == "postgresql"
