"""Benchmark: events/s through validate + transform on simulated events.

    fitrec bench validate --events 1000000

Simulated envelope dicts are turned into frames, validated by the Great Expectations
suites and flattened into typed per-type frames, `chunk` events at a time, exactly
as `export_events` does with the event log (parquet writes and the database read are
not part of it). Simulation time is reported apart and excluded from the rate.
"""

import statistics
import time
from datetime import UTC, datetime
from typing import Any

from pipelines.validation import events_frame, validate_events
from pipelines.validation.suites import INTRODUCES, validator
from platform_api.catalogue.service import catalogue_items

# Events per simulated user-day measured on the simulator; only used to size the population.
_CALIBRATION = {"users": 200, "days": 30}


def bench(events: int = 1_000_000, *, chunk: int = 200_000, days: int = 60, seed: int = 7) -> dict[str, Any]:
    """Simulate about `events` events and time validate + transform over them; returns the figures."""
    from training.simulator import simulate

    end = datetime.now(UTC).replace(microsecond=0)
    items = catalogue_items()
    known_items = {item.item_id for item in items}

    started = time.perf_counter()
    probe = simulate(items, users=_CALIBRATION["users"], days=_CALIBRATION["days"], seed=seed, end=end)
    per_user_day = len(probe) / (_CALIBRATION["users"] * _CALIBRATION["days"])
    # A quarter more users than the probe suggests: short windows vary (recovery, plan starts), and the
    # surplus is cut off at `events` anyway.
    users = max(1, round(events / (per_user_day * days) * 1.25))
    sim = simulate(items, users=users, days=days, seed=seed, end=end)
    simulate_seconds = time.perf_counter() - started

    setup_started = time.perf_counter()
    validator()  # GE import and suite construction: once per process, reported apart
    setup_seconds = time.perf_counter() - setup_started

    known_users: set[str] = set()
    totals = {"received": 0, "stored": 0, "quarantined": 0, "duplicates": 0}
    frame_seconds = validate_seconds = ge_seconds = 0.0
    render_seconds = 0.0
    remaining = events
    batches = sim.iter_batches(chunk)
    while remaining > 0:
        t0 = time.perf_counter()
        rendered = next(batches, None)  # the simulator renders its dicts lazily: simulation time
        if rendered is None:
            break
        batch = rendered[:remaining]
        t1 = time.perf_counter()
        frame = events_frame(batch)
        t2 = time.perf_counter()
        outcome = validate_events(frame, known_users=known_users, known_items=known_items, now=end)
        t3 = time.perf_counter()
        render_seconds += t1 - t0
        frame_seconds += t2 - t1
        validate_seconds += t3 - t2
        ge_seconds += outcome.report["ge_seconds"]
        for key in totals:
            totals[key] += int(outcome.report[key])
        for event_type, column in INTRODUCES.items():
            if event_type == "user.created" and event_type in outcome.by_type:
                known_users.update(outcome.by_type[event_type][column].to_list())
        remaining -= len(batch)

    # The fixed cost of one small batch (an API-sized call): GE's per-suite overhead dominates it.
    small = next(sim.iter_batches(200))
    small_frame = events_frame(small)
    small_runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        validate_events(small_frame, known_users=known_users, known_items=known_items, now=end)
        small_runs.append(time.perf_counter() - t0)

    seconds = frame_seconds + validate_seconds
    return {
        "events": totals["received"],
        **{k: v for k, v in totals.items() if k != "received"},
        "chunk": chunk,
        "users": users,
        "days": days,
        "seconds": round(seconds, 2),
        "events_per_s": round(totals["received"] / seconds) if seconds else None,
        "frame_seconds": round(frame_seconds, 2),
        "validate_seconds": round(validate_seconds, 2),
        "ge_seconds": round(ge_seconds, 2),
        "ge_setup_seconds": round(setup_seconds, 2),
        "simulate_seconds": round(simulate_seconds + render_seconds, 2),
        "small_batch_events": len(small),
        "small_batch_seconds": round(statistics.median(small_runs), 3),
    }
