"""The serving benchmarks run end to end on a tiny trained folder with tiny durations (figures not judged),
clean up their Redis keys, and wrk's script really cycles over many users with the key header."""

import re
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines import bench_serving
from pipelines.cli import app

needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
FOLDER = ["--users", "60", "--days", "10"]


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("bench-serving") / "folder"
    bench_serving.ensure_folder(data_dir, users=60, days=10, seed=7, two_tower=True, say=lambda _: None)
    return data_dir


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, ["bench", *args])
    assert result.exit_code == 0, result.output
    return result.output


def assert_redis_cleaned(output: str, redis_url: str) -> None:
    import redis

    prefix = re.search(r"cache keys of (fitrec_bench_[0-9a-f]+:)", output)
    project = re.search(r"online-store keys of (fitrec_bench_[0-9a-f]+)", output)
    assert prefix and project, output
    client = redis.Redis.from_url(redis_url)
    try:
        assert not list(client.scan_iter(match=f"{prefix.group(1)}*"))
        assert not list(client.scan_iter(match=f"*{project.group(1)}"))
    finally:
        client.close()


@needs_wrk
def test_serving_cached_measures_both_caches_and_cleans_redis(bench_dir: Path, redis_url: str) -> None:
    out = invoke(
        "serving-cached", "--data-dir", str(bench_dir), *FOLDER, "--warm-users", "30", "--rounds", "2",
        "--seconds", "1", "--connections", "4", "--redis-url", redis_url,
    )  # fmt: skip
    assert "30 users answered cached=false" in out and "30 users answered cached=true" in out
    assert "every warmed user still answered cached=true after the rounds" in out
    rows = re.findall(
        r"│\s+(memory|redis)\s+│\s+(\d)\s+│\s+(ping|top-10)\s+│\s+[\d,]+\s+│\s+[\d,]+\s+│\s+([\d.]+)", out
    )
    assert [(c, r, first) for c, r, first, _ in rows] == [
        ("memory", "1", "ping"), ("redis", "1", "ping"), ("memory", "2", "top-10"), ("redis", "2", "top-10"),
    ]  # fmt: skip
    assert all(float(ratio) > 0 for *_, ratio in rows)
    assert re.search(r"target ≥ 0.8\): memory median [\d.]+ .*; redis median [\d.]+", out)
    assert "load average 1/5/15 min before" in out
    assert_redis_cleaned(out, redis_url)
    assert not (bench_dir / "served").exists()


def test_serving_cached_refuses_an_odd_number_of_rounds(tmp_path: Path) -> None:
    # The side measured second runs slower: an odd count would favour one order in the median.
    result = CliRunner().invoke(app, ["bench", "serving-cached", "--data-dir", str(tmp_path), "--rounds", "3"])
    assert result.exit_code == 2
    assert "even number" in result.output
    assert not any(tmp_path.iterdir())  # refused before any folder is built


def test_serving_uncached_times_both_profiles_with_the_models_candidates(bench_dir: Path, redis_url: str) -> None:
    out = invoke(
        "serving-uncached", "--data-dir", str(bench_dir), *FOLDER, "--rounds", "2", "--requests", "8",
        "--warmup", "2", "--redis-url", redis_url,
    )  # fmt: skip
    rounds = re.findall(r"│\s+(embedded|redis)\s+│\s+(\d)\s+│\s+8\s+│", out)
    assert rounds == [("embedded", "1"), ("redis", "1"), ("redis", "2"), ("embedded", "2")]
    assert re.search(r"sources .*two_tower.*candidates per request .* median \d+", out)
    assert re.search(r"target ≤ 15 ms\): embedded median p99 [\d.]+ ms .*; redis median p99 [\d.]+ ms", out)
    assert_redis_cleaned(out, redis_url)


def test_serving_soak_reports_errors_latency_and_server_memory(bench_dir: Path) -> None:
    out = invoke(
        "serving-soak", "--data-dir", str(bench_dir), *FOLDER, "--seconds", "6", "--rate", "10", "--warmup", "2"
    )
    assert re.search(r"requests\s+│ 60, users drawn at random from \d+", out)
    assert re.search(r"errors by status \(0: no answer\)\s+│ none", out)
    assert re.search(r"server RSS\s+│ first \d+ MB, after warm-up \d+ MB, last \d+ MB", out)
    assert "soak embedded: 60 requests, 0 errors" in out


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str | None]] = []
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.seen.append((self.path, self.headers.get("X-API-Key")))
        self.send_response(self.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Recorder", (_Recorder,), {"seen": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


@needs_wrk
def test_wrk_script_cycles_over_every_user_with_the_key(recorder: tuple[str, type[_Recorder]], tmp_path: Path) -> None:
    base, handler = recorder
    users = [f"u-{i:05d}" for i in range(1, 51)]
    script = tmp_path / "users.lua"
    script.write_text(bench_serving.wrk_script(users, {"X-API-Key": "secret"}, threads=2))
    result = bench_serving.run_wrk(base + "/", threads=2, connections=2, seconds=1, script=script)
    assert result.requests >= 100 and result.rps > 0
    assert {key for _, key in handler.seen} == {"secret"}
    assert {path for path, _ in handler.seen} == {f"/v1/users/{u}/recommendations?k=10" for u in users}


@needs_wrk
def test_run_wrk_refuses_non_2xx_answers(recorder: tuple[str, type[_Recorder]]) -> None:
    base, handler = recorder
    handler.status = 404
    with pytest.raises(RuntimeError, match="non-2xx"):
        bench_serving.run_wrk(base + "/ping", threads=1, connections=1, seconds=1)
