"""A steady, open-loop load on the running app: requests start on a fixed schedule, whatever the answers.

Each request is recorded with its start time, route label, status (0: no answer: timeout,
refused or reset) and latency, so a fault's window can be cut out of the record afterwards.
"""

import itertools
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx
import numpy as np


@dataclass(frozen=True)
class Call:
    route: str  # label for the report, e.g. "GET recommendations"
    method: str
    path: str
    headers: dict[str, str]
    json: object = None


@dataclass(frozen=True)
class Sample:
    index: int  # the call's number in the schedule
    at: float  # monotonic start time
    route: str
    status: int
    ms: float
    body: bytes = b""


class SteadyLoad:
    """`rate` requests a second drawn in turn from `calls`, by `workers` threads, until stopped."""

    def __init__(
        self, base: str, calls: Iterable[Call] | Callable[[int], Call], *, rate: float, workers: int = 16
    ) -> None:
        self.base = base
        if callable(calls):
            self._next: Callable[[int], Call] = calls
        else:
            cycle = list(calls)
            self._next = lambda i: cycle[i % len(cycle)]
        self.rate = rate
        self.samples: list[Sample] = []
        self._workers = workers
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._t0 = 0.0

    def start(self) -> "SteadyLoad":
        self._t0 = time.monotonic()
        for n in range(self._workers):
            thread = threading.Thread(target=self._work, daemon=True, name=f"load-{n}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        return self.samples

    def _work(self) -> None:
        with httpx.Client(base_url=self.base, timeout=httpx.Timeout(5.0)) as client:
            while not self._stop.is_set():
                with self._lock:
                    i = next(self._counter)
                due = self._t0 + i / self.rate
                wait = due - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    return
                call = self._next(i)
                started = time.monotonic()
                try:
                    response = client.request(call.method, call.path, headers=call.headers, json=call.json)
                    status, body = response.status_code, response.content
                except httpx.HTTPError:
                    status, body = 0, b""
                sample = Sample(i, started, call.route, status, (time.monotonic() - started) * 1000, body)
                with self._lock:
                    self.samples.append(sample)


def p99(samples: Iterable[Sample]) -> float:
    ms = [s.ms for s in samples]
    return float(np.percentile(ms, 99)) if ms else float("nan")


def between(samples: Iterable[Sample], start: float, end: float) -> list[Sample]:
    return [s for s in samples if start <= s.at < end]
