"""A deterministic simulated fitness population that produces platform events.

`simulate(items, users=..., days=..., seed=..., end=...)` draws users with latent
traits, runs them through `days` days ending at `end`, and returns a `Simulation`:
its users, its events (envelope dicts the platform's `EventIn` accepts, in time
order) and the ground truth behind every choice, for oracle rankings: the
utility of items for a user at a moment, which includes how recovered the user
was that day (`Simulation.recovery`), and the intensity of every item.
"""

import hashlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import numpy as np

from training.simulation.behaviour import Timeline
from training.simulation.catalogue import ItemLike, ItemTable, build_item_table
from training.simulation.columns import DAY_MS, EventColumns, Ids, uuid_strings
from training.simulation.population import Population, SimUser, Window, draw_population, sim_users
from training.simulation.utility import QUALITY_SD, feasible, utility

__all__ = ["ItemLike", "SimUser", "Simulation", "simulate"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Simulation:
    """The outcome of one simulation run. Events are rendered lazily from columns."""

    def __init__(
        self,
        *,
        table: ItemTable,
        pop: Population,
        quality: np.ndarray,
        columns: EventColumns,
        event_id_bytes: np.ndarray,
        start: datetime,
        end: datetime,
        seed: int,
        window: Window,
        recovery: np.ndarray,
        request_day: np.ndarray,
    ) -> None:
        self._table = table
        self._pop = pop
        self._quality = quality
        self._columns = columns
        self._event_id_bytes = event_id_bytes
        self._user_row = {user_id: u for u, user_id in enumerate(pop.ids)}
        self._window = window
        self._recovery = recovery  # (days, users) float32
        self._request_day = request_day  # day index of each request number
        self.start = start
        self.end = end
        self.seed = seed

    def __len__(self) -> int:
        return len(self._columns)

    @cached_property
    def users(self) -> list[SimUser]:
        return sim_users(self._pop, self._table)

    @cached_property
    def events(self) -> list[dict[str, Any]]:
        """Every event as an envelope dict, sorted by occurred_at."""
        return self._render(0, len(self))

    def iter_batches(self, size: int = 5000) -> Iterator[list[dict[str, Any]]]:
        """The events in time order, `size` at a time, without holding them all as dicts."""
        if size < 1:
            raise ValueError("batch size must be at least 1")
        cached = self.__dict__.get("events")
        for lo in range(0, len(self), size):
            hi = min(lo + size, len(self))
            yield cached[lo:hi] if cached is not None else self._render(lo, hi)

    def counts(self) -> dict[str, int]:
        """Number of events per event type."""
        return self._columns.counts()

    def utility(self, user_id: str, item_ids: Sequence[str], *, at: datetime | None = None) -> np.ndarray:
        """The noise-free preference of a user for items at a moment, what the choice model is driven by.

        It includes the user's recovery on the day of `at` (heavy sessions lose
        utility when recovery is low). Without `at`: if exactly these items were
        shown to the user in one recommendation request, that request's day
        (so `utility` is an oracle for the logged slates); otherwise the last
        simulated day (the user as they are now).
        """
        users, items = self._rows(user_id, item_ids)
        user = self._user(user_id)
        day = self._day(at) if at is not None else self._slate_day(user, items)
        recovery = np.full(len(items), self._recovery[day, user], dtype=np.float64)
        return utility(self._pop, self._table, self._quality, users, items, recovery)

    oracle = utility

    def recovery(self, user_id: str, at: datetime | None = None) -> float:
        """The user's true recovery in [0, 1] on the day of `at` (default: the last simulated day)."""
        return float(self._recovery[self._day(at) if at is not None else -1, self._user(user_id)])

    def intensity(self, item_ids: Sequence[str]) -> np.ndarray:
        """How demanding each item is, in [0, 1] (the same scale as the catalogue feature item_intensity)."""
        return self._table.intensity[self._items(item_ids)].copy()

    def _day(self, at: datetime) -> int:
        if at.tzinfo is None:
            raise ValueError("at must be timezone-aware (UTC)")
        ms = (at.astimezone(UTC) - EPOCH) // timedelta(milliseconds=1)
        return int(np.clip((ms - self._window.origin) // DAY_MS, 0, self._recovery.shape[0] - 1))

    def _slate_day(self, user: int, items: np.ndarray) -> int:
        return self._slates.get((int(user), np.sort(items).astype(np.int32).tobytes()), -1)

    @cached_property
    def _slates(self) -> dict[tuple[int, bytes], int]:
        """(user row, sorted item rows of a shown slate) → the day of that request."""
        shown = next((t for t in self._columns.per_type if t.event_type == "recommendation.impression"), None)
        if shown is None or not len(shown):
            return {}
        request = shown.props["request_id"]
        assert isinstance(request, Ids)
        numbers = request.numbers
        order = np.lexsort((shown.item, numbers))
        numbers, items, users = numbers[order], shown.item[order], shown.user[order]
        starts = np.r_[0, np.flatnonzero(numbers[1:] != numbers[:-1]) + 1, len(numbers)]
        days = self._request_day[numbers[starts[:-1]]]
        return {
            (int(users[lo]), items[lo:hi].astype(np.int32).tobytes()): int(day)
            for lo, hi, day in zip(starts[:-1].tolist(), starts[1:].tolist(), days.tolist(), strict=True)
        }

    def feasible(self, user_id: str, item_ids: Sequence[str]) -> np.ndarray:
        """True where the user has all the equipment an item needs."""
        users, items = self._rows(user_id, item_ids)
        return feasible(self._pop, self._table, users, items)

    def _rows(self, user_id: str, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        items = self._items(item_ids)
        return np.full(len(items), self._user(user_id), dtype=np.int64), items

    def _user(self, user_id: str) -> int:
        try:
            return self._user_row[user_id]
        except KeyError:
            raise KeyError(f"unknown simulated user {user_id!r}") from None

    def _items(self, item_ids: Sequence[str]) -> np.ndarray:
        try:
            return np.array([self._table.index[i] for i in item_ids], dtype=np.int64)
        except KeyError as exc:
            raise KeyError(f"unknown item {exc.args[0]!r}") from None

    def _render(self, lo: int, hi: int) -> list[dict[str, Any]]:
        return self._columns.render(
            lo,
            hi,
            user_ids=self._pop.ids,
            item_ids=self._table.ids,
            event_ids=uuid_strings(self._event_id_bytes[lo:hi]),
        )


def _fingerprint(items: Sequence[ItemLike], *, users: int, days: int, seed: int, end: datetime) -> int:
    """Everything that shapes the events, so two different runs never share an event id."""
    h = hashlib.blake2b(digest_size=8)
    h.update(f"{seed}|{users}|{days}|{end.isoformat()}|".encode())
    for it in items:
        h.update(it.item_id.encode() + b"\0")
    return int.from_bytes(h.digest(), "big")


def simulate(items: Sequence[ItemLike], *, users: int, days: int, seed: int, end: datetime) -> Simulation:
    """Simulate `users` users over the `days` days before `end` (events in [end - days, end))."""
    if end.tzinfo is None:
        raise ValueError("end must be timezone-aware (UTC)")
    if users < 0 or days < 1:
        raise ValueError("users must be >= 0 and days >= 1")
    end = end.astimezone(UTC)
    end_ms = (end - EPOCH) // timedelta(milliseconds=1)
    start_ms = end_ms - days * DAY_MS
    fingerprint = _fingerprint(items, users=users, days=days, seed=seed, end=end)

    rng = np.random.default_rng(seed)
    table = build_item_table(items)
    quality = rng.normal(0.0, QUALITY_SD, len(table))
    window = Window(start_ms, end_ms)
    pop = draw_population(rng, n=users, table=table, window=window)
    timeline = Timeline(rng, table=table, pop=pop, quality=quality, window=window, tag=f"{fingerprint:016x}"[:8])
    # Actions still under way at `end` (a workout not yet completed) are cut there, as in a real snapshot.
    columns = timeline.run().freeze(until=end_ms)
    empty = np.zeros(0, dtype=np.int32)
    request_day = np.concatenate(timeline.request_days) if timeline.request_days else empty
    if len(columns) and (columns.ts[0] < start_ms or columns.ts[-1] >= end_ms):
        raise RuntimeError("simulator bug: an event fell outside the simulated window")
    id_rng = np.random.default_rng([seed, fingerprint])
    event_ids = np.frombuffer(id_rng.bytes(16 * len(columns)), dtype=np.uint8).reshape(-1, 16)
    return Simulation(
        table=table,
        pop=pop,
        quality=quality,
        columns=columns,
        event_id_bytes=event_ids,
        start=end - timedelta(days=days),
        end=end,
        seed=seed,
        window=window,
        recovery=timeline.recovery_log,
        request_day=request_day,
    )
