"""Online features within seconds of an event: a thread that pushes the users whose events just arrived.

Every `interval_s` the pusher reads the events received since its watermark whose
type changes a pushed table (`features.push.PUSH_TRIGGERS`), reads those users'
events of the last PUSH_LOOKBACK from the event log, recomputes their user rows
as of now with the batch build's transforms and pushes them to the online store,
so the next uncached recommendation sees them.

The watermark starts when the process starts: anything received before is the
last batch build's business. Each read goes back `overlap` before the watermark
(never before the start), since an ingestion transaction may commit after a
later one (its rows then appear behind the watermark); ids already pushed are
remembered for that long and skipped.
Events the contract refuses (written to the log by an older producer) are left
out, as the batch validation would quarantine them.
"""

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl
from sqlalchemy import Engine

from features.push import PUSH_LOOKBACK, PUSH_TRIGGERS, PushReport, push_events
from features.schema import FEATURE_EVENT_TYPES
from features.transforms import EVENT_SCHEMA
from platform_api.events.read import conforming, read_events

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)
# Longer than an ingestion transaction stays open between stamping received_at and committing.
DEFAULT_OVERLAP = timedelta(seconds=30)


@dataclass(frozen=True)
class PushTick:
    """What one pass did."""

    new_events: int
    report: PushReport | None
    seconds: float


class FeaturePusher:
    """Pushes fresh user rows for new events, every `interval_s`, on a daemon thread (`start`/`stop`)."""

    def __init__(
        self,
        *,
        engine: Engine,
        store: "FeatureStore",
        items: pl.DataFrame | None = None,
        interval_s: float = 2.0,
        started_at: datetime | None = None,
        overlap: timedelta = DEFAULT_OVERLAP,
    ) -> None:
        self._engine = engine
        self._store = store
        self._items = items  # item_id, category, level; None: read from the online catalogue per push
        self.interval_s = interval_s
        self.started_at = (started_at or datetime.now(UTC)).astimezone(UTC)
        self.watermark = self.started_at
        self._overlap = overlap
        self._pushed: dict[str, datetime] = {}  # event_id → received_at, for the overlap window
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0
        self.users_pushed = 0
        self.last_error: str | None = None

    def run_once(self, *, now: datetime | None = None) -> PushTick:
        """One pass: find new trigger events, push their users' rows as of `now`; advance only on success."""
        started = time.perf_counter()
        now = (now or datetime.now(UTC)).astimezone(UTC)
        new = read_events(
            self._engine,
            received_since=max(self.watermark - self._overlap, self.started_at),
            event_types=PUSH_TRIGGERS,
            columns=("event_id", "user_id", "received_at"),
        )
        if self._pushed:
            new = new.filter(~pl.col("event_id").is_in(list(self._pushed)))
        report = None
        if new.height:
            users = new.get_column("user_id").drop_nulls().unique().to_list()
            if users:
                recent = read_events(
                    self._engine, since=now - PUSH_LOOKBACK, user_ids=users, event_types=FEATURE_EVENT_TYPES
                )
                events = conforming(recent).select(list(EVENT_SCHEMA))
                report = push_events(self._store, events, items=self._items, as_of=now)
                self.users_pushed += report.users
            self._remember(new)
        self.ticks += 1
        return PushTick(new_events=new.height, report=report, seconds=time.perf_counter() - started)

    def _remember(self, new: pl.DataFrame) -> None:
        newest = new.get_column("received_at").max()
        if isinstance(newest, datetime) and newest > self.watermark:
            self.watermark = newest
        self._pushed.update(zip(new["event_id"].to_list(), new["received_at"].to_list(), strict=True))
        horizon = self.watermark - self._overlap
        self._pushed = {k: v for k, v in self._pushed.items() if v >= horizon}

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.run_once()
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - keep serving; the same events are retried next tick
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("feature push failed")

    def start(self) -> None:
        if self.interval_s <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, daemon=True, name="feature-push")
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
