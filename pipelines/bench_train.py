"""Training benchmark: N simulated events → ingested → features → trained → registered, per step time and memory.

    fitrec bench train --events 1000000

Runs the real steps (the same functions as `fitrec simulate`, `fitrec features
build` and `fitrec train`) on a scratch data folder with the embedded profile,
and prints each step's wall time and the peak resident memory of the whole
process tree (this process and its children) during it. Peak memory is
sampled by a background thread (psutil, every 20 ms): a peak shorter than
that can be missed; `ru_maxrss` (the kernel's exact high-water mark of the
whole run) is printed beside it as a check.
"""

import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

MB = 1024 * 1024
# Events per user over a window, measured on a small population before the run (for --events).
_CALIBRATION_USERS = 300


def tree_rss() -> int:
    """Resident bytes of this process and all its descendants (0 if psutil cannot tell)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency of several installed packages
        return 0
    me = psutil.Process()
    total = 0
    for proc in [me, *me.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def max_rss_bytes() -> tuple[int, int]:
    """The kernel's high-water marks of resident memory: (this process, its largest waited-for child)."""
    scale = 1 if sys.platform == "darwin" else 1024  # Linux reports KiB
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale
    return int(own), int(children)


class MemorySampler:
    """Samples tree_rss() in a daemon thread and keeps the highest value per named mark since it was set."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self._peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="fitrec-rss-sampler", daemon=True)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def sample(self) -> int:
        rss = tree_rss()
        with self._lock:
            for mark, peak in self._peaks.items():
                self._peaks[mark] = max(peak, rss)
        return rss

    def mark(self, name: str) -> None:
        """Start (or restart) tracking the peak under `name`."""
        with self._lock:
            self._peaks[name] = 0
        self.sample()

    def peak(self, name: str) -> int:
        self.sample()
        with self._lock:
            return self._peaks.get(name, 0)


@dataclass
class StepFigure:
    name: str
    seconds: float
    peak_bytes: int


@dataclass
class TrainBenchReport:
    events: int
    users: int
    days: int
    steps: list[StepFigure] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    max_rss: int = 0
    max_rss_children: int = 0
    generator_seconds: dict[str, float] = field(default_factory=dict)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def total_seconds(self) -> float:
        return sum(s.seconds for s in self.steps if not s.name.startswith("  "))

    @property
    def peak_bytes(self) -> int:
        return max((s.peak_bytes for s in self.steps), default=0)

    def lines(self) -> list[str]:
        out = [f"{self.events:,} events from {self.users:,} simulated users over {self.days} days"]
        width = max(len(s.name) for s in self.steps) if self.steps else 10
        for s in self.steps:
            out.append(f"{s.name:<{width}}  {s.seconds:8.1f} s   peak {s.peak_bytes / MB:8,.0f} MB")
        out.append(
            f"{'end to end':<{width}}  {self.total_seconds:8.1f} s   peak {self.peak_bytes / MB:8,.0f} MB "
            f"(ru_maxrss {self.max_rss / MB:,.0f} MB, children {self.max_rss_children / MB:,.0f} MB)"
        )
        if self.generator_seconds:
            fits = ", ".join(f"{name} {sec:,.0f} s" for name, sec in sorted(self.generator_seconds.items()))
            out.append(f"generator fits (all stages): {fits}")
        if self.metrics:
            m = self.metrics
            shown = [(k, m[k]) for k in ("ndcg@10", "popularity_ndcg@10", "random_ndcg@10", "oracle_ndcg@10") if k in m]
            out.append("held-out slates: " + ", ".join(f"{k} {v:.3f}" for k, v in shown))
        out.append(
            "load average before: {:.2f} {:.2f} {:.2f}; after: {:.2f} {:.2f} {:.2f}".format(
                *self.load_before, *self.load_after
            )
        )
        return out


def _load() -> tuple[float, float, float]:
    import os

    return os.getloadavg()


def users_for(events: int, *, days: int, seed: int, items: list[Any], end: datetime) -> int:
    """How many users give about `events` events over `days` (calibrated on a small population)."""
    from training.simulator import simulate

    small = simulate(items, users=_CALIBRATION_USERS, days=days, seed=seed, end=end)
    per_user = max(len(small) / _CALIBRATION_USERS, 1.0)
    return max(1, round(events / per_user))


def bench_train(
    *,
    data_dir: Path,
    events: int | None = 1_000_000,
    users: int | None = None,
    days: int = 60,
    seed: int = 7,
    two_tower: bool = True,
    say: Callable[[str], None] | None = None,
) -> TrainBenchReport:
    """Run simulate+ingest, feature build and training on `data_dir` (a scratch folder) and measure each.

    `two_tower=False` trains without the two-tower generator (when the training
    configuration has that switch), to see what the rest of training costs.
    """
    from pipelines.build_features import build_features
    from pipelines.config import PipelineSettings
    from pipelines.simulate import simulate_into_platform
    from pipelines.train import run_training
    from platform_api.catalogue.service import list_items, seed_catalogue
    from platform_api.runtime import open_platform

    tell = say or (lambda _msg: None)
    settings = PipelineSettings(FITREC_DATA_DIR=data_dir, DATABASE_URL=None, REDIS_URL=None, MLFLOW_TRACKING_URI=None)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    report = TrainBenchReport(events=0, users=0, days=days, load_before=_load())
    with MemorySampler() as sampler:

        @contextmanager
        def step(name: str) -> Iterator[None]:
            sampler.mark("step")
            started = time.perf_counter()
            tell(name)
            yield
            report.steps.append(StepFigure(name, time.perf_counter() - started, sampler.peak("step")))

        platform = open_platform(settings.platform())
        try:
            with platform.sessions() as session:
                seed_catalogue(session)
                items = list_items(session)
            n_users = users or users_for(events or 1_000_000, days=days, seed=seed, items=items, end=end)
            report.users = n_users
            with step("simulate + ingest"):
                simulated = simulate_into_platform(
                    platform.sessions, items=items, users=n_users, days=days, seed=seed, end=end
                )
            report.events = simulated.events
        finally:
            platform.close()

        with step("features build"):
            build_features(settings)

        # Training's own steps (read events, labels, features, train, evaluate, log and register), timed apart.
        sub: list[StepFigure] = []
        marks: dict[str, Any] = {"name": None, "t": 0.0}

        def progress(name: str, done: int, total: int) -> None:
            now = time.perf_counter()
            if marks["name"] is not None:
                sub.append(StepFigure(f"  {marks['name']}", now - marks["t"], sampler.peak("sub")))
            sampler.mark("sub")
            marks.update(name=None if done >= total else name, t=now)
            if done < total:
                tell(f"train: {name}")

        with step("train + register"):
            trained = run_training(settings, progress=progress, **_training_options(two_tower=two_tower))
        report.steps.extend(sub)
        report.metrics = trained.metrics
        report.generator_seconds = _generator_seconds(settings, getattr(trained, "run_ids", {}).get("generators"))
    report.max_rss, report.max_rss_children = max_rss_bytes()
    report.load_after = _load()
    return report


def _training_options(*, two_tower: bool) -> dict[str, Any]:
    """run_training keywords for the switch, if this version of training has it."""
    if two_tower:
        return {}
    import dataclasses
    import inspect

    from pipelines.train import run_training

    if "config" not in inspect.signature(run_training).parameters:
        raise typer.BadParameter("this version of training has no configuration to switch the two-tower off")
    from training.steps import TrainingConfig

    return {"config": dataclasses.replace(TrainingConfig(), two_tower=False)}


def _generator_seconds(settings: Any, run_id: str | None) -> dict[str, float]:
    """Seconds per generator, summed over the stages, from the generators step's MLflow run (if any)."""
    if not run_id:
        return {}
    import re

    from mlflow.tracking import MlflowClient

    metrics = MlflowClient(tracking_uri=settings.tracking_uri).get_run(run_id).data.metrics
    totals: dict[str, float] = {}
    for key, value in metrics.items():
        found = re.fullmatch(r"(?:carve_\d+|valid|eval|final)_(.+)_seconds", key)
        if found:
            totals[found.group(1)] = totals.get(found.group(1), 0.0) + value
    return totals


EventsOpt = Annotated[int, typer.Option(min=1000, help="About how many events to simulate (users are derived).")]


def bench_train_cmd(
    events: EventsOpt = 1_000_000,
    days: Annotated[int, typer.Option(min=2, help="Days of simulated history.")] = 60,
    users: Annotated[int | None, typer.Option(min=1, help="Simulated users (overrides --events).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    two_tower: Annotated[
        bool, typer.Option(help="Fit the two-tower generator (--no-two-tower: the rest of training alone).")
    ] = True,
    keep: Annotated[
        Path | None, typer.Option(help="Keep the data folder here (default: a scratch folder, deleted after).")
    ] = None,
) -> None:
    """Simulated events → ingest → features → train → register: wall time and peak memory per step."""
    from rich.console import Console

    console = Console()

    def say(msg: str) -> None:
        console.print(f"… {msg} (rss {tree_rss() / MB:,.0f} MB)")

    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        report = bench_train(
            data_dir=keep, events=events, users=users, days=days, seed=seed, two_tower=two_tower, say=say
        )
    else:
        with tempfile.TemporaryDirectory(prefix="fitrec-bench-train-") as scratch:
            report = bench_train(
                data_dir=Path(scratch), events=events, users=users, days=days, seed=seed, two_tower=two_tower, say=say
            )
    for line in report.lines():
        console.print(line, soft_wrap=True)
