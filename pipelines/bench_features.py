"""Feature store benchmark: transform throughput, materialization time, online read latency.

    fitrec bench features --users 7000 --days 30   # about 1M simulated events

Runs on a scratch data folder (never the real one): seeds the catalogue,
simulates a population (events go straight to the transforms, not through
ingestion, which has its own benchmark), builds and materializes the feature
tables, then times online reads.
"""

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from features.retrieval import OnlineFeatureReader, online_features
from features.services import RANKING_SERVICE
from features.store import apply_definitions, open_store
from features.transforms import build_tables, events_frame, items_frame
from pipelines.build_features import materialize, write_tables
from platform_api.catalogue.service import list_items, seed_catalogue
from platform_api.config import PlatformSettings
from platform_api.runtime import open_platform


@dataclass(frozen=True)
class FeatureBenchReport:
    events: int
    users: int
    transform_seconds: float
    events_per_second: float
    feature_rows: int
    materialize_seconds: float
    online_backend: str
    service_p50_ms: float
    service_p99_ms: float
    candidates: int
    candidates_p50_ms: float
    candidates_p99_ms: float
    uncached_p50_ms: float
    uncached_p99_ms: float

    def lines(self) -> list[str]:
        return [
            f"events: {self.events:,} from {self.users:,} simulated users",
            f"transform: {self.transform_seconds:.2f} s = {self.events_per_second:,.0f} events/s "
            f"→ {self.feature_rows:,} feature rows",
            f"materialize (all views, {self.online_backend}): {self.materialize_seconds:.2f} s",
            f"online {RANKING_SERVICE} for one user × one item: "
            f"p50 {self.service_p50_ms:.2f} ms, p99 {self.service_p99_ms:.2f} ms",
            f"serving reader (item rows cached), one user × {self.candidates} candidates: "
            f"p50 {self.candidates_p50_ms:.2f} ms, p99 {self.candidates_p99_ms:.2f} ms",
            f"online_features without the item cache, one user × {self.candidates} candidates: "
            f"p50 {self.uncached_p50_ms:.2f} ms, p99 {self.uncached_p99_ms:.2f} ms",
        ]


def _percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


def _timed(fn: Callable[[], Any], reads: int) -> tuple[float, float]:
    fn()  # warm caches (registry, connections)
    samples = []
    for _ in range(reads):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return _percentiles(samples)


def bench_features(
    *,
    data_dir: Path,
    users: int = 7000,
    days: int = 30,
    seed: int = 7,
    reads: int = 300,
    candidates: int = 500,
    redis_url: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> FeatureBenchReport:
    from training.simulator import simulate

    say = progress or (lambda _msg: None)
    now = datetime.now(UTC)
    platform = open_platform(PlatformSettings(FITREC_DATA_DIR=data_dir, DATABASE_URL=None))
    with platform.sessions() as session:
        seed_catalogue(session)
        items = list_items(session)
    platform.close()

    say(f"simulating {users} users over {days} days")
    events = events_frame(simulate(items, users=users, days=days, seed=seed, end=now).events)
    item_rows = items_frame(i.as_row() for i in items)

    say(f"transforming {events.height:,} events")
    started = time.perf_counter()
    tables = build_tables(events, item_rows, as_of=now)
    transform_s = time.perf_counter() - started

    say("writing, applying, materializing")
    write_tables(tables, data_dir)
    store = open_store(data_dir=data_dir, redis_url=redis_url, project="fitrec_bench")
    try:
        apply_definitions(store)
        started = time.perf_counter()
        materialize(store, end_date=datetime.now(UTC))
        materialize_s = time.perf_counter() - started

        say(f"timing {reads} online reads of each kind")
        rng = random.Random(seed)
        user_ids = tables["user_workout_stats"].get_column("user_id").unique().sort().to_list()
        item_ids = [i.item_id for i in items]
        service = store.get_feature_service(RANKING_SERVICE)
        service_p50, service_p99 = _timed(
            lambda: store.get_online_features(
                features=service, entity_rows=[{"user_id": rng.choice(user_ids), "item_id": rng.choice(item_ids)}]
            ).to_dict(),
            reads,
        )
        slate = item_ids[:candidates]
        reader = OnlineFeatureReader(store, item_ttl_s=3600)
        cand_p50, cand_p99 = _timed(lambda: reader.features(rng.choice(user_ids), slate), reads)
        uncached_p50, uncached_p99 = _timed(lambda: online_features(store, rng.choice(user_ids), slate), reads // 5)
    finally:
        if redis_url:
            store.teardown()
    return FeatureBenchReport(
        events=events.height,
        users=users,
        transform_seconds=transform_s,
        events_per_second=events.height / transform_s,
        feature_rows=sum(t.height for t in tables.values()),
        materialize_seconds=materialize_s,
        online_backend="redis" if redis_url else "sqlite",
        service_p50_ms=service_p50,
        service_p99_ms=service_p99,
        candidates=len(slate),
        candidates_p50_ms=cand_p50,
        candidates_p99_ms=cand_p99,
        uncached_p50_ms=uncached_p50,
        uncached_p99_ms=uncached_p99,
    )
