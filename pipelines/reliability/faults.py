"""Faults injected under a steady load on the production profile (private PostgreSQL and Redis).

Each fault runs `before` seconds of normal load, the fault for `hold` seconds, then watches
the app come back. Figures: failed recommendation requests (any answer but 200, or none),
p99 of every route during the fault, time from the fault's end until /health/ready is back
to what it said before, and (where the fault hits writes) batches half-written.
"""

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import sqlalchemy as sa

from pipelines.reliability.load import Call, Sample, SteadyLoad, between, p99
from pipelines.reliability.stack import AppProcess, Stack
from platform_api.config import normalise_db_url

BATCH = 5  # events per write: a batch stored in part is a half-written one
ITEM = "plan-build-muscle-beginner-home"  # a plan of the seeded catalogue
NAMESPACE = uuid.UUID("6f1d2c1e-7d0e-4a4b-9d61-1f1b0e3c5a77")


@dataclass
class FaultResult:
    name: str
    requests: int = 0
    failed_recommendations: int = 0
    p99_ms: dict[str, float] = field(default_factory=dict)  # per route, during the fault
    recovery_s: float | None = None  # None: not applicable
    half_written: int | None = None  # None: the fault does not hit writes
    lost_acknowledged: int | None = None
    writes: dict[str, int] = field(default_factory=dict)  # event writes by outcome: acknowledged, 503, other
    fallback_answers: int = 0
    notes: str = ""


def mixed_calls(stack: Stack, run: str) -> Callable[[int], Call]:
    """Recommendations of many users, event writes, and platform reads, in a fixed mix."""
    assert stack.credentials is not None
    service = stack.credentials.service

    def call(i: int) -> Call:
        kind = i % 10
        if kind < 6:
            user = f"u-{i % 100 + 1:05d}"
            return Call("GET recommendations", "GET", f"/v1/users/{user}/recommendations?k=10", service)
        if kind < 8:
            return Call("POST events", "POST", "/v1/events", service, event_batch(run, i))
        if kind == 8:
            return Call("GET payments/products", "GET", "/v1/payments/products", {})
        return Call("GET health", "GET", "/health", {})

    return call


def event_batch(run: str, i: int) -> dict[str, object]:
    """The body of POST /v1/events: BATCH events with ids derived from (run, i)."""
    now = datetime.now(UTC).isoformat()
    return {
        "events": [
            {
                "event_id": str(event_id(run, i, j)),
                "event_type": "content.viewed",
                "user_id": f"u-{i % 100 + 1:05d}",
                "item_id": ITEM,
                "occurred_at": now,
                "properties": {"seconds": 30},
            }
            for j in range(BATCH)
        ]
    }


def event_id(run: str, i: int, j: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{run}:{i}:{j}")


def _ready(app: AppProcess) -> str:
    try:
        return str(httpx.get(f"{app.base}/health/ready", timeout=2).json().get("status"))
    except (httpx.HTTPError, ValueError):
        return "unreachable"


def _wait_for(app: AppProcess, status: str, *, timeout_s: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if _ready(app) == status:
            return time.monotonic() - started
        time.sleep(0.2)
    return None


def _fallbacks(samples: list[Sample]) -> int:
    count = 0
    for s in samples:
        if s.route == "GET recommendations" and s.status == 200:
            try:
                served = json.loads(s.body).get("model_version", "")
            except ValueError:
                continue
            count += str(served).startswith("fallback")
    return count


def run_fault(
    name: str,
    stack: Stack,
    app: AppProcess,
    *,
    inject: Callable[[], None],
    repair: Callable[[], object] | None,
    rate: float,
    before_s: float = 5,
    hold_s: float = 10,
    after_s: float = 10,
    writes: bool = False,
) -> FaultResult:
    baseline = _ready(app)
    run = uuid.uuid4().hex[:8]
    load = SteadyLoad(app.base, mixed_calls(stack, run), rate=rate).start()
    time.sleep(before_s)
    fault_start = time.monotonic()
    inject()
    time.sleep(hold_s)
    fault_end = time.monotonic()
    if repair is not None:
        repair()
    recovery = _wait_for(app, baseline, timeout_s=60) if repair is not None else None
    time.sleep(after_s)
    samples = load.stop()
    during = between(samples, fault_start, fault_end)
    result = FaultResult(
        name=name,
        requests=len(samples),
        failed_recommendations=sum(1 for s in samples if s.route == "GET recommendations" and s.status != 200),
        p99_ms={route: p99(s for s in during if s.route == route) for route in sorted({s.route for s in during})},
        recovery_s=recovery,
        fallback_answers=_fallbacks(samples),
        notes=f"health before: {baseline}",
    )
    if writes:
        result.half_written, result.lost_acknowledged = _check_writes(stack, run, samples)
        result.writes = write_outcomes(samples)
    return result


def _check_writes(stack: Stack, run: str, samples: list[Sample]) -> tuple[int, int]:
    """(batches stored in part, acknowledged batches not wholly stored) of this fault's event writes."""
    assert stack.database_url is not None
    engine = sa.create_engine(normalise_db_url(stack.database_url))
    try:
        with engine.connect() as conn:
            stored = {str(r[0]) for r in conn.execute(sa.text("SELECT event_id FROM event_log"))}
    finally:
        engine.dispose()
    half = lost = 0
    for s in samples:
        if s.route != "POST events":
            continue
        n = sum(str(event_id(run, s.index, j)) in stored for j in range(BATCH))
        half += 0 < n < BATCH
        lost += 200 <= s.status < 300 and n < BATCH
    return half, lost


def write_outcomes(samples: list[Sample]) -> dict[str, int]:
    outcomes = {"acknowledged": 0, "503": 0, "other": 0}
    for s in samples:
        if s.route == "POST events":
            outcomes["acknowledged" if 200 <= s.status < 300 else "503" if s.status == 503 else "other"] += 1
    return outcomes


def corrupt_champion(stack: Stack) -> None:
    """Register a version whose artifact is not a model and point `champion` at it."""
    from mlflow.tracking import MlflowClient

    settings = stack.settings()
    bad = stack.data_dir / "corrupt-model"
    bad.mkdir(exist_ok=True)
    (bad / "MLmodel").write_text("this: [is not, a model\n")
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    version = client.create_model_version(settings.model_name, source=bad.resolve().as_uri())
    client.set_registered_model_alias(settings.model_name, "champion", version.version)


def all_faults(prod: Stack, embedded: Stack, *, logs: Path, rate: float) -> list[FaultResult]:
    assert prod.redis is not None and prod.postgres is not None
    redis, postgres = prod.redis, prod.postgres
    results = []
    app = AppProcess(prod.env(FITREC_SERVING_MODEL_REFRESH_S="2"), log_path=logs / "app-faults.log").start()
    try:
        results.append(
            run_fault("Redis killed, restarted", prod, app, inject=redis.kill, repair=redis.start, rate=rate)
        )
        results.append(
            run_fault("Redis frozen (SIGSTOP)", prod, app, inject=redis.freeze, repair=redis.thaw, rate=rate)
        )
        results.append(
            run_fault(
                "PostgreSQL stopped, restarted",
                prod,
                app,
                inject=postgres.stop,
                repair=postgres.start,
                rate=rate,
                writes=True,
            )
        )
        results.append(
            run_fault(
                "corrupt champion registered",
                prod,
                app,
                inject=lambda: corrupt_champion(prod),
                repair=None,
                rate=rate,
            )
        )
    finally:
        app.stop()
    results.append(_online_store_missing(embedded, logs=logs, rate=rate))
    return results


def _online_store_missing(stack: Stack, *, logs: Path, rate: float) -> FaultResult:
    online = stack.data_dir / "feature_repo" / "online_store.db"
    aside = online.with_suffix(".aside")
    online.rename(aside)
    try:
        app = AppProcess(stack.env(), log_path=logs / "app-online-missing.log").start()
        try:
            status = _ready(app)
            load = SteadyLoad(app.base, mixed_calls(stack, uuid.uuid4().hex[:8]), rate=rate).start()
            time.sleep(10)
            samples = load.stop()
        finally:
            app.stop()
    finally:
        aside.rename(online)
    return FaultResult(
        name="online store missing at start",
        requests=len(samples),
        failed_recommendations=sum(1 for s in samples if s.route == "GET recommendations" and s.status != 200),
        p99_ms={route: p99(s for s in samples if s.route == route) for route in sorted({s.route for s in samples})},
        fallback_answers=_fallbacks(samples),
        notes=f"health at start: {status}",
    )
