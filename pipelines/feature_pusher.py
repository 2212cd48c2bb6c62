"""Online features within seconds of an event: a thread that pushes the users whose events just arrived.

Every `interval_s` the pusher reads the events received since its watermark whose
type changes a pushed table (`features.push.PUSH_TRIGGERS`), reads those users'
events of the last PUSH_LOOKBACK from the event log, recomputes their user rows
as of now with the batch build's transforms and pushes them to the online store,
so the next uncached recommendation sees them. A `content.ready` item gets its
catalogue row pushed from the platform's item rows, before the users (a workout
on it then finds its category); `on_items` hears of it afterwards. `on_users`
hears, after the push, of the users whose new events change what they may be
recommended (SLATE_EVENTS); a callback that raises fails the pass, whose events
are then retried next tick (callbacks must be idempotent).

The watermark starts at `started_at` (the worker passes the last materialization's end):
anything received before is the last batch build's business. Each read goes back `overlap` before the watermark
(never before the start), since an ingestion transaction may commit after a
later one (its rows then appear behind the watermark); ids already pushed are
remembered for that long and skipped.
Events the contract refuses (written to the log by an older producer) are left
out, as the batch validation would quarantine them.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import polars as pl
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from features.push import ITEM_TRIGGER, PUSH_LOOKBACK, PUSH_TRIGGERS, PushReport, push_events, push_items
from features.schema import FEATURE_EVENT_TYPES
from features.transforms import EVENT_SCHEMA, items_frame
from platform_api.catalogue.service import get_items
from platform_api.events.read import conforming, read_events

if TYPE_CHECKING:
    from feast import FeatureStore

log = logging.getLogger(__name__)
# Longer than an ingestion transaction stays open between stamping received_at and committing.
DEFAULT_OVERLAP = timedelta(seconds=30)
# Events that change what their user may be recommended (on_users): actions on items, the profile,
# entitlements, health (recovery demotes hard sessions; one sync a day). Impressions are not here: they
# arrive with every request, and would defeat the cache.
SLATE_EVENTS = frozenset(
    {
        "workout.completed",
        "workout.started",
        "plan.enrolled",
        "recommendation.dismissed",
        "user.created",
        "user.profile_updated",
        "subscription.activated",
        "trial.started",
        "item.unlocked",
        "health_metric.synced",
    }
)
# Every event type a pass reads.
TRIGGERS = PUSH_TRIGGERS | SLATE_EVENTS | {ITEM_TRIGGER}


@dataclass(frozen=True)
class PushTick:
    """What one pass did."""

    new_events: int
    report: PushReport | None
    seconds: float
    items: tuple[str, ...] = ()  # new items whose catalogue rows were pushed
    users: frozenset[str] = field(default_factory=frozenset)  # users told to on_users


class FeaturePusher:
    """Pushes fresh user rows for new events and catalogue rows for new items, every `interval_s`, on a
    daemon thread (`start`/`stop`); `on_users(users)` and `on_items(item_ids)` are called from that thread."""

    def __init__(
        self,
        *,
        engine: Engine,
        store: "FeatureStore",
        items: pl.DataFrame | None = None,
        interval_s: float = 2.0,
        started_at: datetime | None = None,
        overlap: timedelta = DEFAULT_OVERLAP,
        on_users: Callable[[set[str]], None] | None = None,
        on_items: Callable[[list[str]], None] | None = None,
    ) -> None:
        self._engine = engine
        self._store = store
        # item_id, category, level (published items are added); None: read from the online catalogue per push
        self._items = items
        self.on_users = on_users
        self.on_items = on_items
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
        """One pass: push new items' and new trigger events' users' rows as of `now`, then call back;
        advance only on success."""
        started = time.perf_counter()
        now = (now or datetime.now(UTC)).astimezone(UTC)
        new = read_events(
            self._engine,
            received_since=max(self.watermark - self._overlap, self.started_at),
            event_types=TRIGGERS,
            columns=("event_id", "event_type", "user_id", "item_id", "received_at"),
        )
        if self._pushed:
            new = new.filter(~pl.col("event_id").is_in(list(self._pushed)))
        report, items, slate = None, [], set()
        if new.height:
            items = self._push_items(_ids(new, ITEM_TRIGGER, "item_id"))
            users = _ids(new, PUSH_TRIGGERS, "user_id")
            if users:
                recent = read_events(
                    self._engine, since=now - PUSH_LOOKBACK, user_ids=users, event_types=FEATURE_EVENT_TYPES
                )
                events = conforming(recent).select(list(EVENT_SCHEMA))
                report = push_events(self._store, events, items=self._items, as_of=now)
                self.users_pushed += report.users
            slate = set(_ids(new, SLATE_EVENTS, "user_id"))
            if items and self.on_items is not None:
                self.on_items(items)
            if slate and self.on_users is not None:
                self.on_users(slate)
            self._remember(new)
        self.ticks += 1
        return PushTick(
            new_events=new.height,
            report=report,
            seconds=time.perf_counter() - started,
            items=tuple(items),
            users=frozenset(slate),
        )

    def _push_items(self, item_ids: list[str]) -> list[str]:
        """Push the catalogue rows of these items (those ready in the platform); their ids."""
        if not item_ids:
            return []
        with Session(self._engine) as session:
            found = items_frame(item.as_row() for item in get_items(session, item_ids=item_ids))
        push_items(self._store, found)
        if self._items is not None and found.height:
            fresh = found.select(self._items.columns)
            self._items = pl.concat([self._items.filter(~pl.col("item_id").is_in(fresh["item_id"])), fresh])
        return found.get_column("item_id").to_list()

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


def _ids(new: pl.DataFrame, event_types: str | frozenset[str], column: str) -> list[str]:
    """The distinct ids in `column` of the new events of these types."""
    types = [event_types] if isinstance(event_types, str) else list(event_types)
    return new.filter(pl.col("event_type").is_in(types)).get_column(column).drop_nulls().unique().to_list()
