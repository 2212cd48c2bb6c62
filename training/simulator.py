"""A deterministic simulated fitness population that produces platform events.

`simulate(items, users=..., days=..., seed=..., end=...)` draws users with latent
traits, runs them through `days` days ending at `end`, and returns a `Simulation`:
its users, its events (envelope dicts the platform's `EventIn` accepts, in time
order) and the ground-truth utility behind every choice, for oracle rankings.
"""

import hashlib
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import numpy as np

from training.simulation.behaviour import Timeline
from training.simulation.catalogue import ItemLike, ItemTable, build_item_table
from training.simulation.columns import DAY_MS, EventColumns, uuid_strings
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
    ) -> None:
        self._table = table
        self._pop = pop
        self._quality = quality
        self._columns = columns
        self._event_id_bytes = event_id_bytes
        self._user_row = {user_id: u for u, user_id in enumerate(pop.ids)}
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

    def utility(self, user_id: str, item_ids: Sequence[str]) -> np.ndarray:
        """The noise-free preference of a user for items, the quantity the choice model is driven by."""
        users, items = self._rows(user_id, item_ids)
        return utility(self._pop, self._table, self._quality, users, items)

    def feasible(self, user_id: str, item_ids: Sequence[str]) -> np.ndarray:
        """True where the user has all the equipment an item needs."""
        users, items = self._rows(user_id, item_ids)
        return feasible(self._pop, self._table, users, items)

    def _rows(self, user_id: str, item_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        try:
            user = self._user_row[user_id]
        except KeyError:
            raise KeyError(f"unknown simulated user {user_id!r}") from None
        try:
            items = np.array([self._table.index[i] for i in item_ids], dtype=np.int64)
        except KeyError as exc:
            raise KeyError(f"unknown item {exc.args[0]!r}") from None
        return np.full(len(items), user, dtype=np.int64), items

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
    )
