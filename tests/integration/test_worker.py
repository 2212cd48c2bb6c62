"""`fitrec worker`: the scheduler fires its jobs and records each run; with two workers one leads and a job runs
once per fire time; when the leader stops, the standby takes over. On SQLite (flock) and PostgreSQL (advisory lock)."""

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pipelines.config import WorkerSettings
from pipelines.worker import Worker, cron_trigger
from platform_api.job_runs import JobRun
from platform_api.runtime import open_platform

EVERY_SECOND = "* * * * * *"


def settings(data_dir: Path, db_url: str) -> WorkerSettings:
    url = None if db_url.startswith("sqlite") else db_url
    return WorkerSettings(
        FITREC_DATA_DIR=data_dir,
        DATABASE_URL=url,
        push_interval_s=0,
        served_load_s=0,
        email_relay_s=0,
        leader_poll_s=0.2,
    )


class Started:
    def __init__(self, worker: Worker) -> None:
        self.worker, self.stop = worker, threading.Event()
        self.thread = threading.Thread(target=worker.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


def wait_for(check: Any, within_s: float = 20) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.1)


@pytest.fixture
def two(tmp_path: Path, db_url: str) -> Iterator[tuple[list[tuple[str, float]], list[Started], WorkerSettings]]:
    fired: list[tuple[str, float]] = []
    lock = threading.Lock()

    def make(name: str) -> Worker:
        def job(_: WorkerSettings) -> dict[str, Any]:
            with lock:
                fired.append((name, time.time()))
            return {"by": name}

        return Worker(settings(tmp_path, db_url), {"tick": (EVERY_SECOND, job)}, name=name)

    config = settings(tmp_path, db_url)
    open_platform(config.platform()).close()  # migrate once, before two workers race to
    first = Started(make("a"))
    wait_for(lambda: first.worker.leader)  # Alembic's upgrade is not thread-safe: workers are processes, not threads
    workers = [first, Started(make("b"))]
    yield fired, workers, config
    for started in workers:
        started.halt()


def test_one_of_two_workers_leads_runs_each_job_once_and_the_other_takes_over(two) -> None:  # type: ignore[no-untyped-def]
    fired, workers, config = two
    wait_for(lambda: sum(s.worker.leader for s in workers) == 1)
    leader = next(s for s in workers if s.worker.leader)
    standby = next(s for s in workers if not s.worker.leader)
    wait_for(lambda: len(fired) >= 3)
    time.sleep(1.5)
    assert not standby.worker.leader
    assert {name for name, _ in fired} == {leader.worker.name}
    seconds = [int(at) for _, at in fired]
    assert len(seconds) == len(set(seconds)), "a fire time ran twice"

    leader.halt()  # its lock goes with it: the standby leads and the schedule goes on
    wait_for(lambda: standby.worker.leader)
    wait_for(lambda: any(name == standby.worker.name for name, _ in fired))

    platform = open_platform(config.platform())
    with platform.sessions() as session:
        runs = session.scalars(select(JobRun).where(JobRun.job == "tick")).all()
    platform.close()
    done = [r for r in runs if r.status == "ok"]
    assert {r.worker for r in done} == {"a", "b"}
    assert all(r.finished_at is not None and r.detail and r.detail["by"] == r.worker for r in done)
    assert all(r.detail is not None and r.detail["seconds"] >= 0 for r in done)


def test_a_failing_job_is_recorded_and_the_schedule_goes_on(tmp_path: Path) -> None:
    calls: list[int] = []

    def job(_: WorkerSettings) -> None:
        calls.append(1)
        raise RuntimeError("provider down")

    config = settings(tmp_path, "sqlite")
    started = Started(Worker(config, {"flaky": (EVERY_SECOND, job)}, name="w"))
    try:
        wait_for(lambda: len(calls) >= 2)
    finally:
        started.halt()
    platform = open_platform(config.platform())
    with platform.sessions() as session:
        runs = session.scalars(select(JobRun).where(JobRun.job == "flaky")).all()
    platform.close()
    failed = [r for r in runs if r.status == "failed"]
    assert len(failed) >= 2 and all("RuntimeError: provider down" in (r.detail or {})["error"] for r in failed)


def test_cron_expressions_are_checked_at_start_up(tmp_path: Path) -> None:
    assert cron_trigger("0 3 * * *") and cron_trigger("*/5 * * * * *")
    with pytest.raises(ValueError, match="5 fields"):
        cron_trigger("0 3 * *")
    with pytest.raises(ValueError):
        WorkerSettings(FITREC_DATA_DIR=tmp_path, retrain_cron="61 * * * *")
    assert WorkerSettings(FITREC_DATA_DIR=tmp_path, retrain_cron="").retrain_cron == ""


def test_a_worker_waits_for_an_unreachable_database(tmp_path: Path) -> None:
    """Started before its database is up, the worker keeps trying instead of dying; it stops when told."""
    started = Started(Worker(settings(tmp_path, "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"), {}))
    time.sleep(1.0)
    assert started.thread.is_alive() and not started.worker.leader
    started.halt()


def test_a_leader_whose_lock_connection_drops_steps_down_and_is_elected_again(tmp_path: Path, pg_url: str) -> None:
    from sqlalchemy import create_engine, text

    from pipelines.locks import lock_key
    from pipelines.worker import LEADER_LOCK

    key = lock_key(LEADER_LOCK) & 0xFFFFFFFF  # pg_locks shows a bigint key's low 32 bits as objid
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    database = admin.url.database

    def holder() -> int | None:
        with admin.connect() as conn:
            pid = conn.execute(
                text(
                    "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.objid = :k AND l.granted AND a.datname = :db"
                ),
                {"k": key, "db": database},
            ).scalar()
        return int(pid) if pid is not None else None

    started = Started(Worker(settings(tmp_path, pg_url), {}))
    try:
        wait_for(lambda: started.worker.leader)
        first = holder()
        assert first is not None
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first})
        # It notices within a poll, steps down, and takes the lock again on a new connection.
        wait_for(lambda: holder() not in (None, first) and started.worker.leader)
        assert started.thread.is_alive()
    finally:
        started.halt()
        admin.dispose()
