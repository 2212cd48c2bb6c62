"""Soak: a fixed rate for minutes, mixing recommendations, events and platform reads and writes.

Errors are answers other than 2xx (or none). Resident memory and open descriptors of the
server process are read after a warm-up and at the end: growth must stay under 10 %.
"""

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from pipelines.reliability.faults import event_batch
from pipelines.reliability.load import Call, SteadyLoad, p99
from pipelines.reliability.stack import AppProcess, Stack

WARM_UP_S = 60


@dataclass
class SoakResult:
    seconds: float
    rate: float
    requests: int = 0
    errors: int = 0
    error_statuses: dict[int, int] = field(default_factory=dict)
    p99_ms: dict[str, float] = field(default_factory=dict)
    rss_mb: tuple[float, float] = (0.0, 0.0)  # after warm-up, at the end
    fds: tuple[int, int] = (0, 0)

    @property
    def rss_growth(self) -> float:
        return self.rss_mb[1] / self.rss_mb[0] - 1 if self.rss_mb[0] else float("nan")

    @property
    def fd_growth(self) -> float:
        return self.fds[1] / self.fds[0] - 1 if self.fds[0] else float("nan")


def soak_calls(stack: Stack, run: str) -> Callable[[int], Call]:
    assert stack.credentials is not None
    service, user = stack.credentials.service, stack.credentials.user

    def call(i: int) -> Call:
        kind = i % 20
        if kind < 10:
            return Call("GET recommendations", "GET", f"/v1/users/u-{i % 100 + 1:05d}/recommendations?k=10", service)
        if kind < 13:
            return Call("POST events", "POST", "/v1/events", service, event_batch(run, i))
        if kind < 15:
            return Call("GET plans", "GET", "/v1/plans?limit=20", user)
        if kind < 17:
            return Call("GET users/me", "GET", "/v1/users/me", user)
        if kind < 18:
            return Call("PATCH users/me", "PATCH", "/v1/users/me", user, {"display_name": f"soak {i}"})
        return Call("GET payments/products", "GET", "/v1/payments/products", {})

    return call


def soak(stack: Stack, app: AppProcess, *, seconds: float, rate: float) -> SoakResult:
    load = SteadyLoad(app.base, soak_calls(stack, uuid.uuid4().hex[:8]), rate=rate).start()
    time.sleep(min(WARM_UP_S, seconds / 2))
    rss_start, fds_start = app.rss_mb(), app.open_fds()
    time.sleep(max(0.0, seconds - min(WARM_UP_S, seconds / 2)))
    rss_end, fds_end = app.rss_mb(), app.open_fds()
    samples = load.stop()
    bad = [s for s in samples if not 200 <= s.status < 300]
    statuses: dict[int, int] = {}
    for s in bad:
        statuses[s.status] = statuses.get(s.status, 0) + 1
    return SoakResult(
        seconds=seconds,
        rate=rate,
        requests=len(samples),
        errors=len(bad),
        error_statuses=statuses,
        p99_ms={route: p99(s for s in samples if s.route == route) for route in sorted({s.route for s in samples})},
        rss_mb=(rss_start, rss_end),
        fds=(fds_start, fds_end),
    )
