"""Benchmarks behind DESIGN.md's speed targets; each returns figures and prints nothing itself."""

import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import sqlalchemy as sa

from pipelines.config import PipelineSettings
from pipelines.simulate import simulate_into_platform
from platform_api.catalogue.service import list_items, seed_catalogue
from platform_api.config import PlatformSettings, normalise_db_url
from platform_api.runtime import open_platform


def bench_ingestion(
    *, users: int, days: int, database_url: str | None = None, batch_size: int = 5000
) -> dict[str, float]:
    """Simulated events through validation and committed inserts, in a scratch database (and folder)."""
    with tempfile.TemporaryDirectory() as scratch, scratch_database(database_url) as url:
        platform = open_platform(PlatformSettings(FITREC_DATA_DIR=Path(scratch), DATABASE_URL=url))
        try:
            with platform.sessions() as session:
                seed_catalogue(session)
                items = list_items(session)
            end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            report = simulate_into_platform(
                platform.sessions, items=items, users=users, days=days, seed=1, end=end, batch_size=batch_size
            )
        finally:
            platform.close()
    return {"events": report.events, "seconds": report.seconds, "events_per_s": report.events / report.seconds}


@contextmanager
def scratch_database(server_url: str | None) -> Iterator[str | None]:
    """A new database on the server of `server_url` for the block, dropped after; None stays None (SQLite)."""
    if server_url is None:
        yield None
        return
    admin = sa.create_engine(normalise_db_url(server_url), isolation_level="AUTOCOMMIT")
    name = f"fitrec_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def create_service_key(settings: PipelineSettings, *, name: str, scopes: list[str]) -> str:
    """A new service API key in the configured platform database; returns its secret."""
    from platform_api.auth.api_keys import create_api_key

    platform = open_platform(settings.platform())
    try:
        with platform.sessions() as session:
            _, secret = create_api_key(session, name=name, scopes=scopes, created_by=None)
            session.commit()
    finally:
        platform.close()
    return secret


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wrk(url: str, *, seconds: int, connections: int, headers: dict[str, str] | None = None) -> float:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers from {url}:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return float(match.group(1))


def bench_serving(settings: PipelineSettings, *, seconds: int = 10, connections: int = 32) -> dict[str, float]:
    """Cached top-10 vs a trivial endpoint of the same app, measured with wrk on loopback.

    Needs a trained data folder (`fitrec demo` or the steps) and `wrk` on PATH.
    """
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "serving.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--no-proxy-headers",  # forwarded headers are the app's business (platform_api.auth.proxies)
        ]
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).json().get("model_version"):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the app did not start with a model; run `fitrec demo` first")
            time.sleep(0.5)
        rec_url = f"{base}/v1/users/u-00001/recommendations?k=10"
        key = {"X-API-Key": create_service_key(settings, name="benchmark", scopes=["recommendations:read"])}
        httpx.get(rec_url, headers=key, timeout=30).raise_for_status()  # fill the cache
        trivial = _wrk(f"{base}/ping", seconds=seconds, connections=connections)
        cached = _wrk(rec_url, seconds=seconds, connections=connections, headers=key)
        trivial_again = _wrk(f"{base}/ping", seconds=seconds, connections=connections)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    floor = (trivial + trivial_again) / 2
    return {"trivial_rps": floor, "cached_top10_rps": cached, "ratio": cached / floor}


def bench_uncached(settings: PipelineSettings, *, requests: int = 300) -> dict[str, float]:
    """Uncached top-10 from the configured number of candidates: features + scoring + filters, in process."""
    from serving.config import ServingSettings
    from serving.state import start_serving

    state = start_serving(
        ServingSettings(
            FITREC_DATA_DIR=settings.data_dir,
            DATABASE_URL=settings.database_url,
            REDIS_URL=settings.redis_url,
            model_refresh_s=0,
        )
    )
    try:
        model = state.models.current
        if model is None:
            raise RuntimeError("no champion model: run `fitrec demo` first")
        users = [f"u-{i:05d}" for i in range(1, requests + 1)]
        state.recommender.rank(users[0], k=10, ranker=model.ranker)  # warm-up
        timings = []
        for user in users:
            started = time.perf_counter()
            state.recommender.rank(user, k=10, ranker=model.ranker)
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        state.close()
    ms = np.asarray(timings)
    return {
        "requests": len(ms),
        "candidates": state.settings.candidates,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }
