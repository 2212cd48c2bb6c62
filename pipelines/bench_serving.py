"""Serving speed benchmarks: cached top-10 against a trivial endpoint, uncached latency, a fixed-rate soak.

    fitrec bench serving-cached     # wrk: cached top-10 req/s ÷ /ping req/s, in-process cache and Redis
    fitrec bench serving-uncached   # one request at a time, cache empty: p50/p90/p99, embedded and Redis online
    fitrec bench serving-soak       # open-loop fixed rate: errors, latency, server memory and descriptors

Everything goes over HTTP to the app in its own uvicorn process, started the way `fitrec serve` starts it
(the app factory, uvicorn's forwarded-header handling off) but without uvicorn's access log: one log line
per request would cost both endpoints the same and flatter the ratio. Many distinct users are asked for,
never one hot key; rounds interleave the two sides of a comparison and the median round is reported.

The data folder (`--data-dir`) is built once (seed, simulate, features, train with every candidate source)
and reused. The Redis runs use a private cache prefix and a private Feast project (the online store's keys
are namespaced by it); only those keys are deleted afterwards, the shared Redis is never flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from pipelines.config import PipelineSettings

if TYPE_CHECKING:  # the CLI imports this module: what the benchmarks use is imported when they run
    import httpx

    from pipelines.reliability.stack import AppProcess

MARKER = "bench-serving.json"
RATIO_TARGET = 0.8
P99_TARGET_MS = 15.0
RSS_GROWTH_TARGET = 0.05
FD_GROWTH_TARGET = 10
MIN_WARM_USERS = 1000  # the target is stated for at least this many distinct users
REC_PATH = "/v1/users/{user}/recommendations?k=10"
# Settings the benchmark chooses for the app: inherited values would point it at other stores.
_NOT_INHERITED = {"DATABASE_URL", "REDIS_URL", "MLFLOW_TRACKING_URI", "FITREC_FEAST_PROJECT", "RAY_ADDRESS"}
Say = Callable[[str], None]


# --- the data folder ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchFolder:
    data_dir: Path
    users: list[str]  # every user with events, sorted

    @property
    def settings(self) -> PipelineSettings:
        return folder_settings(self.data_dir)


def folder_settings(data_dir: Path) -> PipelineSettings:
    """The embedded profile of the folder, whatever the environment says."""
    return PipelineSettings(
        FITREC_DATA_DIR=data_dir,
        DATABASE_URL=None,
        REDIS_URL=None,
        MLFLOW_TRACKING_URI=None,
        RAY_ADDRESS=None,
        FITREC_FEAST_PROJECT="fitrec",
    )


def ensure_folder(data_dir: Path, *, users: int, days: int, seed: int, two_tower: bool, say: Say) -> BenchFolder:
    """The trained folder of these options: reused when this benchmark built it so, else built (empty or new)."""
    data_dir = data_dir.resolve()
    wanted = {"users": users, "days": days, "seed": seed, "two_tower": two_tower}
    marker = data_dir / MARKER
    if marker.exists():
        built = json.loads(marker.read_text())
        was = {k: built.get(k) for k in wanted}
        if was != wanted:
            raise RuntimeError(f"{data_dir} was built with {was}, not {wanted}: delete it or give another --data-dir")
        say(f"reusing {data_dir} ({len(built['user_ids'])} users with events)")
        return BenchFolder(data_dir=data_dir, users=built["user_ids"])
    if data_dir.exists() and any(data_dir.iterdir()):
        raise RuntimeError(
            f"{data_dir} is not empty and was not built by this benchmark (or its build did not finish): "
            "delete it or give another --data-dir"
        )
    started = time.perf_counter()
    user_ids = _build(data_dir, users=users, days=days, seed=seed, two_tower=two_tower, say=say)
    marker.write_text(json.dumps({**wanted, "built_at": datetime.now(UTC).isoformat(), "user_ids": user_ids}))
    say(f"built {data_dir} in {time.perf_counter() - started:.0f} s")
    return BenchFolder(data_dir=data_dir, users=user_ids)


def _build(data_dir: Path, *, users: int, days: int, seed: int, two_tower: bool, say: Say) -> list[str]:
    from pipelines.build_features import build_features, read_validated_events
    from pipelines.simulate import simulate_into_platform
    from pipelines.train import run_training
    from platform_api.catalogue.service import list_items, seed_catalogue
    from platform_api.runtime import open_platform
    from training.steps import TrainingConfig

    data_dir.mkdir(parents=True, exist_ok=True)
    settings = folder_settings(data_dir)
    platform = open_platform(settings.platform())
    try:
        with platform.sessions() as session:
            seed_catalogue(session)
            items = list_items(session)
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        say(f"simulating {users} users × {days} days into {data_dir}")
        simulate_into_platform(platform.sessions, items=items, users=users, days=days, seed=seed, end=end)
    finally:
        platform.close()
    say("building features")
    build_features(settings)
    say(f"training ({'every candidate source' if two_tower else 'no two-tower'})")
    run_training(settings, config=TrainingConfig(two_tower=two_tower))
    return sorted(read_validated_events(settings)["user_id"].drop_nulls().unique().to_list())


def service_key(folder: BenchFolder) -> dict[str, str]:
    """The header of a new service key with recommendations:read (the app backend's)."""
    from pipelines.benchmarks import create_service_key

    secret = create_service_key(folder.settings, name="serving benchmark", scopes=["recommendations:read"])
    return {"X-API-Key": secret}


# --- Redis: a private cache prefix and a private online store ----------------------------------------------


def delete_matching(redis_url: str, pattern: bytes) -> int:
    import redis

    client = redis.Redis.from_url(redis_url)
    deleted = 0
    try:
        keys: list[bytes] = list(client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(keys), 1000):
            deleted += client.unlink(*keys[start : start + 1000])  # type: ignore[operator]
    finally:
        client.close()
    return deleted


@contextmanager
def private_cache_prefix(redis_url: str, say: Say) -> Iterator[str]:
    """A cache prefix nobody else uses; its keys are deleted after the block."""
    prefix = f"fitrec_bench_{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        say(f"deleted {delete_matching(redis_url, prefix.encode() + b'*')} cache keys of {prefix}")


@contextmanager
def redis_online_store(folder: BenchFolder, redis_url: str, say: Say) -> Iterator[str]:
    """The folder's features materialized into Redis under a new Feast project; yields the project name.

    Feast's Redis keys end with the project's name, so the project's keys (and only they) are deleted
    after, and the project is removed from the folder's registry.
    """
    from features.store import definitions, open_store
    from pipelines.build_features import materialize

    project = f"fitrec_bench_{uuid.uuid4().hex[:12]}"
    store = open_store(data_dir=folder.data_dir, redis_url=redis_url, project=project)
    started = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # Feast prints every view it materializes
            store.apply(definitions())  # not apply_definitions: the folder's feature_store.yaml stays embedded
            materialize(store, end_date=datetime.now(UTC), full=True)
        say(f"features materialized into Redis as Feast project {project} in {time.perf_counter() - started:.1f} s")
        yield project
    finally:
        deleted = delete_matching(redis_url, b"*" + project.encode())
        store.delete_project(project)
        say(f"deleted {deleted} online-store keys of {project}")


# --- the app -------------------------------------------------------------------------------------------


@dataclass
class RunningApp:
    name: str
    process: AppProcess
    headers: dict[str, str]

    @property
    def base(self) -> str:
        return self.process.base


def app_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The app's environment: this folder, these settings; FITREC_SERVING_* from outside are kept."""
    env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
    env["FITREC_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


def inherited_serving_settings() -> dict[str, str]:
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith("FITREC_SERVING_")}


@contextmanager
def running_app(
    name: str, folder: BenchFolder, headers: dict[str, str], *, env: dict[str, str]
) -> Iterator[RunningApp]:
    """The app as its own uvicorn process, serving the champion model; stopped after the block.

    Its log is kept in the folder's bench-logs/ (overwritten by the next run).
    """
    import httpx

    from pipelines.reliability.stack import AppProcess

    log_dir = folder.data_dir / "bench-logs"
    log_dir.mkdir(exist_ok=True)
    log_path = log_dir / f"app-{name}.log"
    log_path.unlink(missing_ok=True)
    process = AppProcess(env, log_path=log_path)
    try:
        process.start()
        deadline = time.monotonic() + 120
        while True:
            try:
                body = httpx.get(f"{process.base}/health", timeout=10).json()
            except (httpx.HTTPError, ValueError) as exc:
                raise RuntimeError(f"the {name} app's /health failed ({exc}); see {log_path}") from exc
            if body.get("model_version"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {name} app serves no model: {body}; see {log_path}")
            time.sleep(0.5)
        yield RunningApp(name=name, process=process, headers=headers)
    finally:
        process.stop()


def profile_env(stack: ExitStack, folder: BenchFolder, redis_url: str | None, say: Say, **extra: str) -> dict[str, str]:
    """The app's environment: embedded, or (with `redis_url`) Redis for the cache and the online store under
    a private prefix and Feast project, both removed when the stack closes."""
    if redis_url is None:
        return app_env(folder.data_dir, **extra)
    project = stack.enter_context(redis_online_store(folder, redis_url, say))
    prefix = stack.enter_context(private_cache_prefix(redis_url, say))
    return app_env(
        folder.data_dir, REDIS_URL=redis_url, FITREC_FEAST_PROJECT=project, FITREC_SERVING_CACHE_PREFIX=prefix, **extra
    )


def start_apps(
    stack: ExitStack, folder: BenchFolder, headers: dict[str, str], specs: Sequence[tuple[str, dict[str, str]]]
) -> list[RunningApp]:
    """(name, environment) apps started side by side (start-up is seconds of imports and model loading);
    each is stopped when the stack closes, also when another one failed to start."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(specs)) as pool:
        futures = [pool.submit(stack.enter_context, running_app(name, folder, headers, env=env)) for name, env in specs]
    return [f.result() for f in futures]


def _answer(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise RuntimeError(f"{response.request.url} answered {response.status_code}: {response.text[:300]}")
    body: dict[str, Any] = response.json()
    return body


RANKING_TIMEOUT = "ranking_timeout"  # RecommendationsPublic.fallback_reason when ranking took too long


def _check_ranked(body: dict[str, Any], *, cached: bool, where: str, timeout_ok: bool = False) -> bool:
    """Whether the model ranked the answer as expected; False only for a ranking timeout when `timeout_ok`
    (a slow answer, timed as it is); any other fallback means the set-up is wrong, and raises."""
    reason = body.get("fallback_reason")
    if reason == RANKING_TIMEOUT and timeout_ok:
        return False
    if reason is not None or str(body.get("model_version", "")).startswith("fallback"):
        raise RuntimeError(f"{where}: a fallback answered ({reason}), not the model")
    if body.get("cached") is not cached:
        raise RuntimeError(f"{where}: answered cached={body.get('cached')}, expected {cached}")
    return True


def warm(app: RunningApp, users: Sequence[str], say: Say) -> None:
    """Each user once (must be computed: cached false; asked again after a ranking timeout), then again
    (must be cached)."""
    import httpx

    with httpx.Client(base_url=app.base, headers=app.headers, timeout=30) as client:
        for expected in (False, True):
            started = time.perf_counter()
            for user in users:
                for attempt in range(3):
                    body = _answer(client.get(REC_PATH.format(user=user)))
                    if _check_ranked(body, cached=expected, where=f"{app.name} app, {user}", timeout_ok=attempt < 2):
                        break
            say(
                f"{app.name}: {len(users)} users answered cached={str(expected).lower()} "
                f"in {time.perf_counter() - started:.1f} s"
            )


def check_still_cached(app: RunningApp, users: Sequence[str]) -> None:
    import httpx

    with httpx.Client(base_url=app.base, headers=app.headers, timeout=30) as client:
        for user in users:
            _check_ranked(_answer(client.get(REC_PATH.format(user=user))), cached=True, where=f"{app.name}, after")


# --- machine -----------------------------------------------------------------------------------------------


def machine_line(before: tuple[float, float, float], after: tuple[float, float, float]) -> str:
    def load(avg: tuple[float, float, float]) -> str:
        return "/".join(f"{x:.2f}" for x in avg)

    return (
        f"machine: {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable by this process); "
        f"load average 1/5/15 min before {load(before)}, after {load(after)}"
    )


def _percentiles(ms: Sequence[float]) -> dict[str, float]:
    import numpy as np

    if not ms:
        return {q: float("nan") for q in ("p50", "p90", "p99", "max")}
    a = np.asarray(ms, dtype=float)
    return {
        "p50": float(np.percentile(a, 50)),
        "p90": float(np.percentile(a, 90)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
    }


def _ok(ok: bool) -> str:
    return "ok" if ok else "MISSED"


# --- wrk ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    rps: float
    requests: int
    p99_ms: float
    non_2xx: int
    socket_errors: dict[str, int]


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def parse_wrk(out: str) -> WrkResult:
    """wrk's --latency report: requests/s, total requests, p99, non-2xx answers and socket errors."""

    def latency(pct: str) -> float:
        match = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.MULTILINE)
        if not match:
            raise RuntimeError(f"no {pct}% latency in wrk's output:\n{out}")
        return float(match.group(1)) * _UNITS[match.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if not rps or not total:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        rps=float(rps.group(1)),
        requests=int(total.group(1)),
        p99_ms=latency("99"),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=dict(
            zip(("connect", "read", "write", "timeout"), map(int, errors.groups()) if errors else (0,) * 4, strict=True)
        ),
    )


def wrk_script(users: Sequence[str], headers: dict[str, str], *, threads: int) -> str:
    """A wrk Lua script cycling over the users' recommendation URLs, each thread from its own offset."""
    header_table = ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    return f"""-- pipelines.bench_serving: {len(users)} warmed users in turn, thread n from n/{threads} of the way
local users = {{{", ".join(json.dumps(u) for u in users)}}}
local headers = {{{header_table}}}
local threads = {threads}
local started = 0

function setup(thread)
  thread:set("id", started)
  started = started + 1
end

function init(args)
  -- each request's bytes built once: the load generator's cost stays that of a fixed request
  reqs = {{}}
  for n, user in ipairs(users) do
    reqs[n] = wrk.format("GET", "{REC_PATH.format(user='" .. user .. "')}", headers)
  end
  i = math.floor((id or 0) * #users / threads)
end

function request()
  i = i % #users + 1
  return reqs[i]
end
"""


# Between wrk runs: the last run's served-log flush (FITREC_SERVING_SERVED_FLUSH_S, 1 s) and its collections
# end before the next run starts; on 2 cores they would otherwise take CPU from the run measured next.
SETTLE_S = 2.0


def run_wrk(url: str, *, threads: int, connections: int, seconds: int, script: Path | None = None) -> WrkResult:
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    if script is not None:
        args += ["-s", str(script)]
    done = subprocess.run([*args, url], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    result = parse_wrk(done.stdout)
    if result.non_2xx or result.socket_errors["timeout"] or result.socket_errors["connect"]:
        raise RuntimeError(
            f"{url}: {result.non_2xx} non-2xx answers, socket errors {result.socket_errors}; "
            f"not a measurement of served answers:\n{done.stdout}"
        )
    return result


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: apt-get install wrk (Debian/Ubuntu's package)")


# --- 1. cached ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CachedRound:
    cache: str
    round: int
    first: str  # "ping" or "top-10": which ran first in this round
    ping: WrkResult
    top10: WrkResult

    @property
    def ratio(self) -> float:
        return self.top10.rps / self.ping.rps


def bench_cached(
    folder: BenchFolder,
    *,
    caches: Sequence[str],
    redis_url: str,
    warm_users: int,
    rounds: int,
    threads: int,
    connections: int,
    seconds: int,
    say: Say,
) -> list[CachedRound]:
    """Both caches' apps run side by side; each round runs wrk on /ping and on the top-10 of each cache,
    the order alternating from round to round (ping first, then top-10 first)."""
    require_wrk()
    users = folder.users[:warm_users]
    headers = service_key(folder)
    out: list[CachedRound] = []
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fitrec-bench-wrk-")))
        script = scratch / "users.lua"
        script.write_text(wrk_script(users, headers, threads=threads))
        ttl = {"FITREC_SERVING_CACHE_TTL_S": "86400"}  # no answer may expire during the rounds
        specs = [(c, profile_env(stack, folder, redis_url if c == "redis" else None, say, **ttl)) for c in caches]
        apps = start_apps(stack, folder, headers, specs)
        for app in apps:
            warm(app, users, say)
        for r in range(rounds):
            for app in apps:
                runs: dict[str, WrkResult] = {}
                order = ("ping", "top-10") if r % 2 == 0 else ("top-10", "ping")
                for what in order:
                    time.sleep(SETTLE_S)
                    if what == "ping":
                        runs[what] = run_wrk(
                            f"{app.base}/ping", threads=threads, connections=connections, seconds=seconds
                        )
                    else:
                        runs[what] = run_wrk(
                            app.base + REC_PATH.format(user=users[0]),
                            threads=threads,
                            connections=connections,
                            seconds=seconds,
                            script=script,
                        )
                out.append(CachedRound(app.name, r + 1, order[0], runs["ping"], runs["top-10"]))
                resets = {k: v for run in runs.values() for k, v in run.socket_errors.items() if v}
                say(
                    f"round {r + 1}/{rounds} {app.name}: ratio {out[-1].ratio:.3f}"
                    + (f" (socket errors {resets})" if resets else "")
                )
        for app in apps:
            check_still_cached(app, users)
        say("every warmed user still answered cached=true after the rounds")
    _remove_served_log(folder)  # the apps have stopped writing it
    return out


def _remove_served_log(folder: BenchFolder) -> None:
    """The slates the benchmark's requests appended (hundreds of MB after wrk runs): no data to keep."""
    shutil.rmtree(folder.data_dir / "served", ignore_errors=True)


# --- 2. uncached ----------------------------------------------------------------------------------------


@dataclass
class UncachedRound:
    profile: str
    round: int
    users: list[str]
    ms: list[float]
    ping_ms: list[float]
    timeouts: int  # answers that popularity gave because ranking took longer than the app's rank timeout

    @property
    def figures(self) -> dict[str, float]:
        return _percentiles(self.ms)


@dataclass(frozen=True)
class ModelFacts:
    sources: tuple[str, ...]
    known: frozenset[str]
    candidates: dict[str, int]  # known user -> candidates the model gives (the union of its sources)


def _time_users(app: RunningApp, users: Sequence[str], *, pings: int) -> tuple[list[float], list[float], int]:
    import httpx

    ms: list[float] = []
    ping_ms: list[float] = []
    timeouts = 0
    with httpx.Client(base_url=app.base, headers=app.headers, timeout=30) as client:
        client.get("/ping").raise_for_status()  # the connection is open before the first timed request
        for user in users:
            started = time.perf_counter()
            response = client.get(REC_PATH.format(user=user))
            elapsed = (time.perf_counter() - started) * 1000
            timeouts += not _check_ranked(
                _answer(response), cached=False, where=f"{app.name} app, {user}", timeout_ok=True
            )
            ms.append(elapsed)
        for _ in range(pings):  # the same client's floor: HTTP and uvicorn without any of our work
            started = time.perf_counter()
            client.get("/ping").raise_for_status()
            ping_ms.append((time.perf_counter() - started) * 1000)
    return ms, ping_ms, timeouts


def bench_uncached(
    folder: BenchFolder,
    *,
    profiles: Sequence[str],
    redis_url: str,
    rounds: int,
    requests: int,
    warmup: int,
    seed: int,
    say: Say,
) -> tuple[list[UncachedRound], ModelFacts]:
    """Each profile's app runs side by side; each round asks every profile for `requests` users it was never
    asked for (its cache cannot hold them), one at a time; the profile order alternates between rounds."""
    pool = list(folder.users)
    random.Random(seed).shuffle(pool)
    per_round = min(requests, (len(pool) - warmup) // rounds)
    if per_round < 1:
        raise RuntimeError(f"{len(pool)} users cannot give {rounds} rounds after {warmup} warm-up users")
    if per_round < requests:
        say(f"only {len(pool)} users: {per_round} per round instead of {requests}")
    headers = service_key(folder)
    out: list[UncachedRound] = []
    with ExitStack() as stack:
        specs = [(p, profile_env(stack, folder, redis_url if p == "redis" else None, say)) for p in profiles]
        apps = start_apps(stack, folder, headers, specs)
        for app in apps:  # first requests of a process pay for lazy set-ups: not timed
            _time_users(app, pool[:warmup], pings=0)
        for r in range(rounds):
            users = pool[warmup + r * per_round : warmup + (r + 1) * per_round]
            for app in apps if r % 2 == 0 else apps[::-1]:
                ms, ping_ms, timeouts = _time_users(app, users, pings=50)
                out.append(UncachedRound(app.name, r + 1, users, ms, ping_ms, timeouts))
                say(f"round {r + 1}/{rounds} {app.name}: p99 {out[-1].figures['p99']:.1f} ms")
    _remove_served_log(folder)
    timed = sorted({u for rnd in out for u in rnd.users})
    return out, model_facts(folder, timed)


def model_facts(folder: BenchFolder, users: Sequence[str]) -> ModelFacts:
    """What the champion model does for these users, asked in this process (after the timing): which
    users it knows and how many candidates its sources give a known user."""
    from training.registry import load_champion

    settings = folder.settings
    model, _ = load_champion(settings.tracking_uri, settings.model_name)
    package = model.unwrap_python_model()
    known = [u for u in users if package.knows_user(u)]
    counts: dict[str, int] = {}
    if known:
        found = package.candidates(known)
        counts = {str(u): int(n) for u, n in found.groupby("user_id").size().items()}
    return ModelFacts(sources=tuple(package.config.sources), known=frozenset(known), candidates=counts)


# --- 3. soak --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shot:
    at: float  # seconds after the start, as scheduled
    status: int  # 0: no answer (timeout, refused, reset)
    ms: float  # from the scheduled time to the answer (queueing in the client included)
    cached: bool | None


@dataclass
class SoakReport:
    seconds: float
    rate: float
    warmup_s: float
    shots: list[Shot]
    sent_s: float  # when the last request was sent
    max_send_lag_ms: float  # how far behind schedule a send ever was
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (seconds, MB)
    fds: list[tuple[float, int]] = field(default_factory=list)

    def after_warmup(self, samples: list[tuple[float, Any]]) -> list[tuple[float, Any]]:
        later = [s for s in samples if s[0] >= self.warmup_s]
        return later or samples[-1:]


def soak(
    app: RunningApp, users: Sequence[str], *, seconds: float, rate: float, seed: int, sample_s: float = 5.0
) -> SoakReport:
    """`rate` requests a second for `seconds`, each sent at its scheduled time whatever the answers before."""
    import httpx

    total = int(seconds * rate)
    picks = random.Random(seed).choices(users, k=total)
    shots: list[Shot | None] = [None] * total
    report = SoakReport(seconds=seconds, rate=rate, warmup_s=0.0, shots=[], sent_s=0.0, max_send_lag_ms=0.0)

    async def one(client: httpx.AsyncClient, i: int, due: float, t0: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            response = await client.get(REC_PATH.format(user=picks[i]))
            cached = response.json().get("cached") if response.status_code == 200 else None
            status = response.status_code
        except (httpx.HTTPError, ValueError):
            status, cached = 0, None
        shots[i] = Shot(at=due - t0, status=status, ms=(loop.time() - due) * 1000, cached=cached)

    async def sample(t0: float, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while True:  # every sample_s, and once more when the last answer is in
            report.rss_mb.append((loop.time() - t0, app.process.rss_mb()))
            report.fds.append((loop.time() - t0, app.process.open_fds()))
            if stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), sample_s)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        async with httpx.AsyncClient(
            base_url=app.base, headers=app.headers, timeout=httpx.Timeout(5.0), limits=limits
        ) as client:
            stop = asyncio.Event()
            t0 = loop.time()
            sampler = asyncio.create_task(sample(t0, stop))
            tasks = []
            for i in range(total):
                due = t0 + i / rate
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    report.max_send_lag_ms = max(report.max_send_lag_ms, -delay * 1000)
                tasks.append(asyncio.create_task(one(client, i, due, t0)))
            report.sent_s = loop.time() - t0
            await asyncio.gather(*tasks)
            stop.set()
            await sampler

    asyncio.run(main())
    report.shots = [s for s in shots if s is not None]
    return report


# --- the commands -----------------------------------------------------------------------------------------

DataDirOpt = Annotated[
    Path, typer.Option(help="The benchmark's data folder: built on first use, reused after (delete it to rebuild).")
]
UsersOpt = Annotated[int, typer.Option(min=10, help="Simulated users of the data folder (when it is built).")]
DaysOpt = Annotated[int, typer.Option(min=2, help="Days of simulated history of the data folder (when built).")]
SeedOpt = Annotated[int, typer.Option(help="Seed of the simulation and of the user order.")]
TwoTowerOpt = Annotated[
    bool, typer.Option(help="Train the two-tower generator too (every candidate source); only when building.")
]
RedisOpt = Annotated[
    str | None,
    typer.Option(help="Redis for the Redis runs (default: $REDIS_URL, else redis://127.0.0.1:6379/0)."),
]
RoundsOpt = Annotated[int, typer.Option(min=1, help="Interleaved rounds; the median round is reported.")]


def _console() -> Any:
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # a log file: the tables at full width, not rich's 80 columns
        console.width = 120
    return console


def _redis_url(option: str | None) -> str:
    return option or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def _header(console: Any, folder: BenchFolder) -> None:
    inherited = inherited_serving_settings()
    console.print(
        f"data folder {folder.data_dir}: {len(folder.users)} users with events; app: uvicorn "
        "serving.app:create_app --factory (as fitrec serve, no access log), one process"
        + (f"; app settings from the environment: {inherited}" if inherited else ""),
        soft_wrap=True,
    )


def _prepare(data_dir: Path, users: int, days: int, seed: int, two_tower: bool, console: Any) -> BenchFolder:
    def say(msg: str) -> None:
        console.print(f"… {msg}", soft_wrap=True)

    return ensure_folder(data_dir, users=users, days=days, seed=seed, two_tower=two_tower, say=say)


def bench_serving_cached_cmd(
    data_dir: DataDirOpt = Path("fitrec-bench-serving"),
    users: UsersOpt = 2000,
    days: DaysOpt = 30,
    seed: SeedOpt = 7,
    two_tower: TwoTowerOpt = True,
    cache: Annotated[
        list[str], typer.Option(help="A cache to measure (repeat): memory (in-process), redis. Default: both.")
    ] = ["memory", "redis"],  # noqa: B006 - typer reads the default, never mutates it
    redis_url: RedisOpt = None,
    warm_users: Annotated[
        int, typer.Option(min=1, help="Distinct users warmed and cycled over by wrk (the target: ≥ 1000).")
    ] = MIN_WARM_USERS,
    rounds: Annotated[
        int,
        typer.Option(
            min=2,
            help="Interleaved rounds, an even number: the side measured second runs slower on this machine, "
            "so each order (ping first, top-10 first) runs equally often; the median round is reported.",
        ),
    ] = 6,
    threads: Annotated[int, typer.Option(min=1, help="wrk threads (-t).")] = 2,
    connections: Annotated[int, typer.Option(min=1, help="wrk connections (-c).")] = 32,
    seconds: Annotated[int, typer.Option(min=1, help="Seconds of each wrk run (-d).")] = 10,
) -> None:
    """Cached top-10 req/s ÷ /ping req/s of the same app, with wrk over many warmed users (both caches)."""
    from rich.table import Table

    console = _console()
    unknown = set(cache) - {"memory", "redis"}
    if unknown:
        raise typer.BadParameter(f"unknown cache(s) {sorted(unknown)}: choose memory, redis")
    if rounds % 2:
        raise typer.BadParameter(f"--rounds {rounds}: give an even number (each order runs equally often)")
    try:
        require_wrk()
        folder = _prepare(data_dir, users, days, seed, two_tower, console)
        n = min(warm_users, len(folder.users))
        before = os.getloadavg()
        results = bench_cached(
            folder,
            caches=[c for c in ("memory", "redis") if c in cache],
            redis_url=_redis_url(redis_url),
            warm_users=n,
            rounds=rounds,
            threads=threads,
            connections=connections,
            seconds=seconds,
            say=lambda msg: console.print(f"… {msg}", soft_wrap=True),
        )
        after = os.getloadavg()
    except RuntimeError as exc:
        console.print(f"[red]failed[/]: {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc
    _header(console, folder)
    table = Table(title=f"cached top-10 vs /ping: wrk -t{threads} -c{connections} -d{seconds}s, {n} users cycled")
    for column in ("cache", "round", "first", "/ping req/s", "top-10 req/s", "ratio", "/ping p99 ms", "top-10 p99 ms"):
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(
            r.cache,
            str(r.round),
            r.first,
            f"{r.ping.rps:,.0f}",
            f"{r.top10.rps:,.0f}",
            f"{r.ratio:.3f}",
            f"{r.ping.p99_ms:.2f}",
            f"{r.top10.p99_ms:.2f}",
        )
    console.print(table)
    summary = []
    for name in dict.fromkeys(r.cache for r in results):
        ratios = [r.ratio for r in results if r.cache == name]
        median = statistics.median(ratios)
        summary.append(
            f"{name} median {median:.3f} ({min(ratios):.3f}–{max(ratios):.3f}) {_ok(median >= RATIO_TARGET)}"
        )
    console.print(machine_line(before, after))
    if n < MIN_WARM_USERS:
        console.print(f"[yellow]only {n} warmed users: the target is stated for at least {MIN_WARM_USERS}[/]")
    console.print(f"cached/trivial ratio (target ≥ {RATIO_TARGET}): " + "; ".join(summary), soft_wrap=True)


def bench_serving_uncached_cmd(
    data_dir: DataDirOpt = Path("fitrec-bench-serving"),
    users: UsersOpt = 2000,
    days: DaysOpt = 30,
    seed: SeedOpt = 7,
    two_tower: TwoTowerOpt = True,
    profile: Annotated[
        list[str],
        typer.Option(
            help="A profile (repeat): embedded (SQLite online store), redis (Redis online store and "
            "cache). Default: both."
        ),
    ] = ["embedded", "redis"],  # noqa: B006 - typer reads the default, never mutates it
    redis_url: RedisOpt = None,
    rounds: RoundsOpt = 5,
    requests: Annotated[
        int, typer.Option(min=1, help="Users asked per round and profile, each never asked before in its app.")
    ] = 350,
    warmup: Annotated[int, typer.Option(min=0, help="Users asked first in each app, not timed.")] = 20,
) -> None:
    """Uncached top-10 latency over HTTP, one request at a time, all candidate sources (both profiles)."""
    from rich.table import Table

    console = _console()
    unknown = set(profile) - {"embedded", "redis"}
    if unknown:
        raise typer.BadParameter(f"unknown profile(s) {sorted(unknown)}: choose embedded, redis")
    try:
        folder = _prepare(data_dir, users, days, seed, two_tower, console)
        before = os.getloadavg()
        results, facts = bench_uncached(
            folder,
            profiles=[p for p in ("embedded", "redis") if p in profile],
            redis_url=_redis_url(redis_url),
            rounds=rounds,
            requests=requests,
            warmup=warmup,
            seed=seed,
            say=lambda msg: console.print(f"… {msg}", soft_wrap=True),
        )
        after = os.getloadavg()
    except RuntimeError as exc:
        console.print(f"[red]failed[/]: {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc
    _header(console, folder)
    table = Table(
        title="uncached top-10 over HTTP, one request at a time (ms)",
        caption="rank timeouts: popularity answered (timed as they came); /ping p99: 50 pings of the same client "
        "after the round (the HTTP floor)",
    )
    for column in ("profile", "round", "users", "p50", "p90", "p99", "max", "rank timeouts", "/ping p99"):
        table.add_column(column, justify="right")
    for r in results:
        f = r.figures
        table.add_row(
            r.profile,
            str(r.round),
            str(len(r.ms)),
            *(f"{f[q]:.2f}" for q in ("p50", "p90", "p99", "max")),
            str(r.timeouts),
            f"{_percentiles(r.ping_ms)['p99']:.2f}",
        )
    console.print(table)
    split = Table(title="all rounds pooled, by whether the model knows the user (ms)")
    for column in ("profile", "users", "requests", "p50", "p90", "p99", "max"):  # users: all, known or cold
        split.add_column(column, justify="right")
    summary = []
    for name in dict.fromkeys(r.profile for r in results):
        mine = [r for r in results if r.profile == name]
        timed = [(u, ms) for r in mine for u, ms in zip(r.users, r.ms, strict=True)]
        for label, keep in (
            ("all", lambda u: True),
            ("known", lambda u: u in facts.known),
            ("cold", lambda u: u not in facts.known),
        ):
            ms = [m for u, m in timed if keep(u)]
            if ms:
                f = _percentiles(ms)
                split.add_row(name, label, str(len(ms)), *(f"{f[q]:.2f}" for q in ("p50", "p90", "p99", "max")))
        median = statistics.median(r.figures["p99"] for r in mine)
        timeouts = sum(r.timeouts for r in mine)
        summary.append(
            f"{name} median p99 {median:.1f} ms"
            + (f" ({timeouts} rank timeouts: popularity answered)" if timeouts else "")
            + f" {_ok(median <= P99_TARGET_MS and not timeouts)}"
        )
    console.print(split)
    counts = list(facts.candidates.values())
    if counts:
        console.print(
            f"model: sources {', '.join(facts.sources)}; candidates per request (known users, the union of the "
            f"sources, asked of the champion in this process): median {statistics.median(counts):.0f}, "
            f"min {min(counts)}, max {max(counts)}",
            soft_wrap=True,
        )
    else:
        console.print(f"model: sources {', '.join(facts.sources)}; no timed user is known to it", soft_wrap=True)
    console.print(machine_line(before, after))
    console.print(f"uncached top-10 p99 (target ≤ {P99_TARGET_MS:.0f} ms): " + "; ".join(summary), soft_wrap=True)


def bench_serving_soak_cmd(
    data_dir: DataDirOpt = Path("fitrec-bench-serving"),
    users: UsersOpt = 2000,
    days: DaysOpt = 30,
    seed: SeedOpt = 7,
    two_tower: TwoTowerOpt = True,
    profile: Annotated[
        str, typer.Option(help="embedded (in-process cache, SQLite online store) or redis (Redis for both).")
    ] = "embedded",
    redis_url: RedisOpt = None,
    seconds: Annotated[float, typer.Option(min=1, help="How long the load runs.")] = 120,
    rate: Annotated[
        float, typer.Option(min=1, help="Requests per second, sent on schedule whatever the answers.")
    ] = 100,
    cache_ttl: Annotated[
        int, typer.Option(min=1, help="The app's cache TTL (s): with users drawn at random, it sets the cached share.")
    ] = 30,
    warmup: Annotated[float, typer.Option(min=0, help="Seconds before memory growth and latency are counted.")] = 20,
) -> None:
    """A fixed-rate open-loop load of top-10 requests (cached and uncached users): errors, latency, memory."""
    from rich.table import Table

    console = _console()
    if profile not in ("embedded", "redis"):
        raise typer.BadParameter(f"unknown profile {profile!r}: choose embedded, redis")

    def say(msg: str) -> None:
        console.print(f"… {msg}", soft_wrap=True)

    try:
        folder = _prepare(data_dir, users, days, seed, two_tower, console)
        headers = service_key(folder)
        with ExitStack() as stack:
            url = _redis_url(redis_url) if profile == "redis" else None
            env = profile_env(stack, folder, url, say, FITREC_SERVING_CACHE_TTL_S=str(cache_ttl))
            [app] = start_apps(stack, folder, headers, [(profile, env)])
            before = os.getloadavg()
            say(f"{rate:g} requests/s for {seconds:g} s")
            report = soak(app, folder.users, seconds=seconds, rate=rate, seed=seed)
            report.warmup_s = min(warmup, seconds / 2)
            after = os.getloadavg()
        _remove_served_log(folder)
    except RuntimeError as exc:
        console.print(f"[red]failed[/]: {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc
    _header(console, folder)
    shots = report.shots
    errors: dict[int, int] = {}
    for s in shots:
        if s.status != 200:
            errors[s.status] = errors.get(s.status, 0) + 1
    counted = [s for s in shots if s.at >= report.warmup_s and s.status == 200]
    rss, fds = report.after_warmup(report.rss_mb), report.after_warmup(report.fds)
    growth = rss[-1][1] / rss[0][1] - 1
    fd_growth = fds[-1][1] - fds[0][1]
    cached_share = sum(1 for s in shots if s.cached) / max(1, sum(1 for s in shots if s.cached is not None))
    table = Table(title=f"soak: {profile}, {rate:g} requests/s for {seconds:g} s, cache TTL {cache_ttl} s")
    for column in ("figure", "value", "target", ""):
        table.add_column(column)
    rows: list[tuple[str, str, str, bool | None]] = [
        ("requests", f"{len(shots):,}, users drawn at random from {len(folder.users):,}", "", None),
        ("errors by status (0: no answer)", json.dumps(errors) if errors else "none", "none", not errors),
        (
            "sent rate",
            f"{len(shots) / max(report.sent_s, 1e-9):.1f}/s (latest send {report.max_send_lag_ms:.1f} ms late)",
            f"{rate:g}/s",
            None,
        ),
        ("answered cached", f"{cached_share:.0%}", "", None),
    ]
    for label, keep in (
        ("latency, all", lambda s: True),
        ("latency, cached", lambda s: s.cached is True),
        ("latency, uncached", lambda s: s.cached is False),
    ):
        f = _percentiles([s.ms for s in counted if keep(s)])
        rows.append((f"{label} (after warm-up)", f"p50 {f['p50']:.1f} ms, p99 {f['p99']:.1f} ms", "", None))
    rss_all = [mb for _, mb in report.rss_mb]
    rows += [
        (
            "server RSS",
            f"first {rss_all[0]:.0f} MB, after warm-up {rss[0][1]:.0f} MB, last {rss_all[-1]:.0f} MB, "
            f"max {max(rss_all):.0f} MB ({len(rss_all)} samples)",
            "",
            None,
        ),
        ("RSS growth after warm-up", f"{growth:+.1%}", f"≤ {RSS_GROWTH_TARGET:.0%}", growth <= RSS_GROWTH_TARGET),
        (
            "open descriptors",
            f"first {report.fds[0][1]}, after warm-up {fds[0][1]}, last {fds[-1][1]}",
            f"≤ +{FD_GROWTH_TARGET}",
            fd_growth <= FD_GROWTH_TARGET,
        ),
    ]
    for label, value, target, ok in rows:
        table.add_row(label, value, target, "" if ok is None else _ok(ok))
    console.print(table)
    console.print(machine_line(before, after))
    verdict = not errors and growth <= RSS_GROWTH_TARGET and fd_growth <= FD_GROWTH_TARGET
    console.print(
        f"soak {profile}: {len(shots):,} requests, {sum(errors.values())} errors, RSS {growth:+.1%} after warm-up, "
        f"descriptors {fd_growth:+d} (targets: no errors, RSS ≤ {RSS_GROWTH_TARGET:.0%}, "
        f"descriptors ≤ +{FD_GROWTH_TARGET}): {_ok(verdict)}",
        soft_wrap=True,
    )
