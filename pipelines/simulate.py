"""Write a simulated population's events into the platform through the ingestion code the API uses."""

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from platform_api.events.ingest import ingest
from training.simulator import ItemLike, simulate


@dataclass(frozen=True)
class SimulateReport:
    events: int
    stored: int
    duplicates: int
    seconds: float


class SimulatorBug(RuntimeError):
    """The simulator produced an event the platform's contract rejects."""


def simulate_into_platform(
    session_factory: Callable[[], Session],
    *,
    items: Sequence[ItemLike],
    users: int,
    days: int,
    seed: int,
    end: datetime,
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> SimulateReport:
    """Simulate and ingest batch by batch, one transaction per batch; re-running stores nothing twice.

    `on_total(n)` is told the number of events once simulated (a progress bar's total);
    `progress(k)` after each committed batch of k events.
    """
    started = time.perf_counter()
    sim = simulate(items, users=users, days=days, seed=seed, end=end)
    if on_total is not None:
        on_total(len(sim))
    stored = duplicates = 0
    for batch in sim.iter_batches(batch_size):
        raw: list[Mapping[str, Any]] = list(batch)
        with session_factory() as session:
            result = ingest(session, raw=raw)
            if result.rejected:
                session.rollback()
                first = result.rejected[0]
                raise SimulatorBug(
                    f"{len(result.rejected)} simulated events rejected; first {first.event_id}: {first.errors}"
                )
            session.commit()
        stored += result.stored
        duplicates += result.duplicates
        if progress is not None:
            progress(len(batch))
    return SimulateReport(
        events=len(sim), stored=stored, duplicates=duplicates, seconds=round(time.perf_counter() - started, 3)
    )
