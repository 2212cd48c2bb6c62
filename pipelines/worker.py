"""`fitrec worker`: the platform's background work, done once however many workers run.

Workers elect a leader with a named lock (`pipelines.locks`: a PostgreSQL advisory lock, a file lock
on the embedded profile). The leader runs the online feature pusher, the impression loader, the outbox
relay and the scheduler; the others wait, trying the lock every `leader_poll_s`, and one of them takes
over when the leader stops or dies (the lock goes with its connection or process). The API processes
hear what the pusher saw through cache signals (`platform_api.cache_signals`).

Scheduled jobs (APScheduler cron triggers, expressions in settings) record each run in `job_run`
(start, end, status, what it returned), which `/metrics` reports.
"""

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.exc import DBAPIError

from pipelines.config import WorkerSettings
from pipelines.locks import Held, exclusive
from platform_api import cache_signals
from platform_api.job_runs import JobRun
from platform_api.runtime import Platform, open_platform

log = logging.getLogger(__name__)
LEADER_LOCK = "fitrec-worker-leader"
SIGNAL_RETENTION = timedelta(hours=1)  # far longer than any replica's poll interval
PRUNE_EVERY_S = 600.0
CATCH_UP = timedelta(hours=24)

Job = Callable[[WorkerSettings], Mapping[str, Any] | None]


def cron_trigger(expression: str) -> CronTrigger:
    """A crontab line (5 fields), or 6 with seconds first (`*/5 * * * * *`: every 5 s, for tests)."""
    fields = expression.split()
    if len(fields) == 5:
        return CronTrigger.from_crontab(expression, timezone=UTC)
    if len(fields) == 6:
        second, minute, hour, day, month, day_of_week = fields
        return CronTrigger(
            second=second, minute=minute, hour=hour, day=day, month=month, day_of_week=day_of_week, timezone=UTC
        )
    raise ValueError(f"a cron expression has 5 fields (or 6 with seconds first), not {len(fields)}: {expression!r}")


@dataclass
class Worker:
    """One worker process's work; `run(stop)` blocks until `stop` is set."""

    settings: WorkerSettings
    jobs: Mapping[str, tuple[str, Job]]  # job name → (cron expression, function)
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")
    leader: bool = False
    pusher: Any = None  # while leading: the FeaturePusher (None when pushes are off or the store is empty)
    loader: Any = None  # while leading: the ImpressionLoader

    def run(self, stop: threading.Event) -> None:
        platform = self._open(stop)
        if platform is None:
            return
        try:
            while not stop.is_set():
                try:
                    with exclusive(platform.engine, LEADER_LOCK, lock_dir=self.settings.lock_dir) as held:
                        if held:
                            log.info("worker %s leads", self.name)
                            try:
                                self._lead(platform, stop, held)
                            finally:
                                self.leader = False
                except DBAPIError:  # the database went away while electing or leading: elect again
                    log.warning("worker %s: database unreachable; electing again", self.name, exc_info=True)
                stop.wait(self.settings.leader_poll_s)
        finally:
            platform.close()

    def _open(self, stop: threading.Event) -> Platform | None:
        """The platform (migrated), waiting for the database while it is unreachable; None once told to stop."""
        while not stop.is_set():
            try:
                return open_platform(self.settings.platform())
            except DBAPIError as exc:
                log.warning("worker %s: database unreachable (%s); retrying", self.name, str(exc.orig).strip())
                stop.wait(self.settings.leader_poll_s)
        return None

    def _lead(self, platform: Platform, stop: threading.Event, held: Held) -> None:
        term = threading.Event()  # this leadership's end: the worker stops, or it loses the lock
        background = _Background(term)
        self.pusher = _start_pusher(self.settings, platform) if self.settings.push_interval_s else None
        if self.settings.served_load_s:
            from serving.ranking.impressions import ImpressionLoader

            self.loader = ImpressionLoader(directory=self.settings.served_log_dir, sessions=platform.sessions)
            background.every(self.settings.served_load_s, self.loader.load, "impression-loader")
        if self.settings.email_relay_s:
            background.every(self.settings.email_relay_s, _outbox_relay(platform), "outbox-relay")
        background.every(PRUNE_EVERY_S, lambda: _prune_signals(platform), "signal-prune")
        scheduler = BackgroundScheduler(timezone=UTC)
        for job, (expression, work) in self.jobs.items():
            if expression:
                scheduler.add_job(
                    self._recorded,
                    cron_trigger(expression),
                    args=(platform, job, work),
                    id=job,
                    max_instances=1,  # a run still going when the next is due: the next is skipped
                    coalesce=True,  # missed while busy or down: run once, not once per missed time
                    misfire_grace_time=60,
                )
        scheduler.start()
        self.leader = True  # everything it leads has started
        try:
            while not stop.wait(self.settings.leader_poll_s):
                if not held.alive():  # the lock's connection dropped: a standby may lead already
                    log.error("worker %s lost the leader lock; stepping down", self.name)
                    return
        finally:
            term.set()
            scheduler.shutdown(wait=True)
            background.join()
            if self.pusher is not None:
                self.pusher.stop()
            if self.loader is not None:
                self.loader.close()  # a last load of what the API wrote

    def _recorded(self, platform: Platform, job: str, work: Job) -> None:
        """Run one job, recording it in `job_run`; a failure is recorded and logged, never raised."""
        run = JobRun(id=str(uuid.uuid4()), job=job, worker=self.name, started_at=datetime.now(UTC), status="running")
        with platform.sessions() as session:
            session.add(run)
            session.commit()
            session.expunge(run)
        started = time.perf_counter()
        try:
            detail = dict(work(self.settings) or {})
            status = "ok"
        except Exception as exc:  # noqa: BLE001 - the scheduler goes on; the next run tries again
            log.exception("job %s failed", job)
            detail, status = {"error": f"{type(exc).__name__}: {exc}"}, "failed"
        detail["seconds"] = round(time.perf_counter() - started, 3)
        with platform.sessions() as session:
            row = session.get(JobRun, run.id)
            if row is not None:
                row.finished_at, row.status, row.detail = datetime.now(UTC), status, _jsonable(detail)
                session.commit()


class _Background:
    """Threads that call their work every so often until the worker stops."""

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._threads: list[threading.Thread] = []

    def every(self, every_s: float, work: Callable[[], object], name: str) -> None:
        def loop() -> None:
            while not self._stop.wait(every_s):
                try:
                    work()
                except Exception:  # noqa: BLE001 - the next tick tries again
                    log.exception("%s failed", name)

        thread = threading.Thread(target=loop, daemon=True, name=name)
        thread.start()
        self._threads.append(thread)

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=30)


def _start_pusher(settings: WorkerSettings, platform: Platform) -> Any:
    from features.store import open_store
    from features.transforms import items_frame
    from pipelines.feature_pusher import FeaturePusher
    from platform_api.catalogue.service import list_items

    store = open_store(
        data_dir=settings.data_dir,
        redis_url=settings.redis_url,
        project=settings.feast_project,
        redis_timeout_s=settings.push_timeout_s,
    )
    if not store.list_feature_views():
        log.warning("the feature store is empty (run `fitrec features build`): no online pushes")
        return None
    with platform.sessions() as session:
        items = list_items(session)

    def signal(kind: str, keys: Sequence[str | None]) -> None:
        with platform.sessions() as session:
            cache_signals.emit(session, kind, keys)
            session.commit()

    pusher = FeaturePusher(
        engine=platform.engine,
        store=store,
        started_at=_pushed_since(store),
        items=items_frame(item.as_row() for item in items).select("item_id", "category", "level"),
        interval_s=settings.push_interval_s,
        on_users=lambda users: signal(cache_signals.USER, sorted(users)),
        on_items=lambda _items: signal(cache_signals.CATALOGUE, [None]),
    )
    pusher.start()
    return pusher


def _pushed_since(store: Any) -> datetime:
    """Where the pusher starts: the last materialization's end, so events received while no worker ran are
    pushed too; at most CATCH_UP back (older gaps are the hourly materialize job's)."""
    now = datetime.now(UTC)
    ends = [view.most_recent_end_time for view in store.list_feature_views() if view.most_recent_end_time]
    if not ends:
        return now
    end = min(e if e.tzinfo else e.replace(tzinfo=UTC) for e in ends)
    return max(end, now - CATCH_UP)


def _outbox_relay(platform: Platform) -> Callable[[], object]:
    from platform_api.email.factory import make_email_sender
    from platform_api.outbox import relay_outbox

    mailer = make_email_sender(
        platform.settings.email_url.get_secret_value(), sender=platform.settings.email_from, sessions=platform.sessions
    )
    return lambda: relay_outbox(platform.sessions, mailer=mailer)


def _prune_signals(platform: Platform) -> None:
    with platform.sessions() as session:
        cache_signals.prune(session, older_than=SIGNAL_RETENTION)
        session.commit()


def _jsonable(detail: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in detail.items():
        out[key] = value if isinstance(value, str | int | float | bool | type(None)) else str(value)
    return out
