"""Named locks across processes and hosts: who leads the workers, which pipeline run goes ahead.

On PostgreSQL a session advisory lock, held by a connection of its own: it is released when the holder
ends, crashes or loses its connection, so a standby takes over without a stale lease to expire. On the
embedded profile (SQLite, one host) an exclusive `flock` on a file in the data folder, which the kernel
releases the same way.
"""

import fcntl
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError


class Held:
    """Whether the lock was got (truthy when held), and `alive()`: whether it still is."""

    def __init__(self, held: bool, alive: Callable[[], bool] = lambda: True) -> None:
        self._held = held
        self._alive = alive

    def __bool__(self) -> bool:
        return self._held

    def alive(self) -> bool:
        """Still held: on PostgreSQL its connection still answers (the server dropped the lock otherwise)."""
        return self._held and self._alive()


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for `name` (advisory locks are keyed by bigint)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@contextmanager
def exclusive(engine: Engine, name: str, *, lock_dir: Path, wait_s: float = 0.0) -> Iterator[Held]:
    """Hold the lock `name` inside the block; yields whether it was got (within `wait_s` seconds)."""
    if engine.dialect.name == "postgresql":
        with _advisory(engine, name, wait_s) as held:
            yield held
    else:
        with _flock(lock_dir / f"{name}.lock", wait_s) as held:
            yield held


def _poll(try_once: Callable[[], bool], wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while not try_once():
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    return True


@contextmanager
def _advisory(engine: Engine, name: str, wait_s: float) -> Iterator[Held]:
    key = lock_key(name)
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")  # no transaction held open beside the lock

        def try_once() -> bool:
            return bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())

        def alive() -> bool:
            try:
                conn.execute(text("SELECT 1"))
            except SQLAlchemyError:
                return False
            return True

        held = _poll(try_once, wait_s)
        try:
            yield Held(held, alive)
        finally:
            if held:
                with suppress(SQLAlchemyError):  # a lost connection has released the lock already
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


@contextmanager
def _flock(path: Path, wait_s: float) -> Iterator[Held]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:

        def try_once() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        held = _poll(try_once, wait_s)
        try:
            yield Held(held)  # the kernel keeps it while this process lives
        finally:
            if held:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
