"""The serving app's periodic work keeps running through failures and stops when told."""

import threading
import time

from serving.state import _every


def test_periodic_work_survives_errors_and_stops() -> None:
    calls: list[float] = []

    def work() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("first tick fails")

    stop = threading.Event()
    _every(0.01, stop, work, "test-loop")
    deadline = time.monotonic() + 5
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    assert len(calls) >= 3  # the failing first tick did not end the loop
    time.sleep(0.05)
    settled = len(calls)
    time.sleep(0.05)
    assert len(calls) == settled
