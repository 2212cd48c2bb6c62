"""Each app's metrics are its own, even when Feast's metrics module was imported first (it switches
prometheus_client to multiprocess mode, where values of the same name are shared through files)."""

import subprocess
import sys

PROGRAM = """
import feast.metrics  # noqa: F401 - first, as the full test session or a Feast feature server imports it
from prometheus_client import generate_latest
from serving.metrics import ServingMetrics

first, second = ServingMetrics(), ServingMetrics()
first.observe("GET", "/x", 200, 0.01)
for _ in range(2):
    second.observe("GET", "/x", 200, 0.01)
for metrics in (first, second):
    text = generate_latest(metrics.registry).decode()
    print(next(line for line in text.splitlines() if line.startswith("fitrec_http_request_duration_seconds_count")))
"""


def test_two_apps_count_their_own_requests_after_feast_metrics_is_imported() -> None:
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    counts = [float(line.rsplit(" ", 1)[1]) for line in done.stdout.splitlines()]
    assert counts == [1.0, 2.0]
