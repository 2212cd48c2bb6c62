"""`fitrec check reliability`: fuzz, faults, security and soak, as one table of figures.

Runs on demand, not in CI's default test command. It builds its own trained stacks (an
embedded one, and one on a private PostgreSQL and a private Redis on free ports) and never
touches the machine's shared servers, except that the security tests get fresh databases
and key prefixes on the servers named by DATABASE_URL / REDIS_URL, as CI's tests do.
"""

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.reliability.faults import all_faults
from pipelines.reliability.fuzz import run_schemathesis
from pipelines.reliability.soak import soak
from pipelines.reliability.stack import AppProcess, Stack, build_stack

PARTS = ("fuzz", "faults", "security", "soak")
SHARED_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SHARED_REDIS = "redis://127.0.0.1:6379/0"


@dataclass
class Row:
    part: str
    check: str
    figure: str
    target: str
    ok: bool


@dataclass
class Report:
    out: Path
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, part: str, check: str, figure: str, target: str, ok: bool) -> None:
        self.rows.append(Row(part, check, figure, target, ok))

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)


def machine_load() -> str:
    one, five, _ = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {one:.2f} (1 min), {five:.2f} (5 min)"


def run_reliability(
    *,
    parts: tuple[str, ...] = PARTS,
    soak_s: float = 600,
    fuzz_examples: int = 20,
    rate: float = 40,
    out: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> Report:
    out = out or Path(tempfile.mkdtemp(prefix="fitrec-reliability-"))
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out=out)
    report.notes.append(f"machine at start: {machine_load()}")
    stacks: dict[str, Stack] = {}
    try:
        if {"fuzz", "faults", "soak"} & set(parts):
            for profile in ("embedded", "production"):
                progress(f"building the {profile} stack (seed, simulate, features, train)")
                stacks[profile] = build_stack(profile)
        if "fuzz" in parts:
            for profile, stack in stacks.items():
                progress(f"fuzzing the {profile} profile")
                _fuzz(report, stack, examples=fuzz_examples)
        if "faults" in parts:
            progress("injecting faults under load")
            _faults(report, stacks, rate=rate)
        if "security" in parts:
            progress("running the security checks")
            _security(report)
        if "soak" in parts:
            progress(f"soaking for {soak_s:.0f} s at {rate:.0f} requests/s")
            _soak(report, stacks["production"], seconds=soak_s, rate=rate)
    finally:
        for stack in stacks.values():
            stack.close()
    report.notes.append(f"machine at end: {machine_load()}")
    return report


def _fuzz(report: Report, stack: Stack, *, examples: int) -> None:
    stack.renew_credentials()
    assert stack.credentials is not None
    app = AppProcess(stack.env(), log_path=report.out / f"app-fuzz-{stack.profile}.log").start()
    try:
        for caller, headers in stack.credentials.by_name().items():
            r = run_schemathesis(
                app.base,
                profile=stack.profile,
                caller=caller,
                headers=headers,
                out=report.out,
                max_examples=examples,
                seed=42,
            )
            check = f"{stack.profile}, {caller}: {r.cases} cases over {r.operations} operations"
            report.add("fuzz", check + " — 5xx", str(r.server_errors), "0", r.server_errors == 0)
            report.add(
                "fuzz", check + " — status-code conformance", str(r.status_violations), "0", r.status_violations == 0
            )
            report.add("fuzz", check + " — schema conformance", str(r.schema_violations), "0", r.schema_violations == 0)
            report.notes.extend(f"fuzz {stack.profile}, {caller}: {line}" for line in r.failures)
    finally:
        app.stop()


def _faults(report: Report, stacks: dict[str, Stack], *, rate: float) -> None:
    for r in all_faults(stacks["production"], stacks["embedded"], logs=report.out, rate=rate):
        p99s = ", ".join(f"{route} {ms:.0f}" for route, ms in r.p99_ms.items())
        report.add(
            "faults",
            f"{r.name} — failed recommendations of {r.requests} requests",
            str(r.failed_recommendations),
            "0",
            r.failed_recommendations == 0,
        )
        report.add("faults", f"{r.name} — p99 ms during the fault", p99s, "", True)
        report.add("faults", f"{r.name} — answers from a fallback", str(r.fallback_answers), "", True)
        if r.recovery_s is not None or r.name.startswith(("Redis", "PostgreSQL")):
            figure = "never (60 s)" if r.recovery_s is None else f"{r.recovery_s:.1f} s"
            report.add("faults", f"{r.name} — back to normal after repair", figure, "< 60 s", r.recovery_s is not None)
        if r.writes:
            figure = ", ".join(f"{n} {outcome}" for outcome, n in r.writes.items())
            ok = r.writes["other"] == 0 and r.writes["acknowledged"] > 0
            report.add("faults", f"{r.name} — event writes", figure, "some acknowledged, 0 other", ok)
        if r.half_written is not None:
            report.add(
                "faults", f"{r.name} — event batches half-written", str(r.half_written), "0", r.half_written == 0
            )
            report.add(
                "faults",
                f"{r.name} — acknowledged batches lost",
                str(r.lost_acknowledged),
                "0",
                r.lost_acknowledged == 0,
            )
        report.notes.append(f"fault {r.name}: {r.notes}")


def _security(report: Report) -> None:
    from pipelines.reliability.security import run_security_tests

    results = run_security_tests(
        out=report.out,
        database_url=os.environ.get("DATABASE_URL", SHARED_PG),
        redis_url=os.environ.get("REDIS_URL", SHARED_REDIS),
        repo=Path(__file__).resolve().parents[2],
    )
    if not results:
        report.add("security", "security tests found", "0", "> 0", False)
    for r in results:
        figure = f"{r.passed} passed, {len(r.failed)} failed" + (f", {r.skipped} skipped" if r.skipped else "")
        report.add("security", r.module, figure, "0 failed, 0 skipped", not r.failed and not r.skipped)
        report.notes.extend(f"security {r.module}: FAILED {name}" for name in r.failed)


def _soak(report: Report, stack: Stack, *, seconds: float, rate: float) -> None:
    stack.renew_credentials()  # access tokens live 15 minutes; the stack may be older than that
    app = AppProcess(stack.env(), log_path=report.out / "app-soak.log").start()
    try:
        r = soak(stack, app, seconds=seconds, rate=rate)
    finally:
        app.stop()
    statuses = ", ".join(f"{status or 'no answer'}: {n}" for status, n in sorted(r.error_statuses.items()))
    report.add(
        "soak",
        f"{r.seconds:.0f} s at {r.rate:.0f}/s: errors of {r.requests} requests",
        str(r.errors) + (f" ({statuses})" if statuses else ""),
        "0",
        r.errors == 0,
    )
    for route, ms in r.p99_ms.items():
        report.add("soak", f"p99 ms {route}", f"{ms:.1f}", "", True)
    report.add(
        "soak",
        "resident memory MB (after warm-up → end)",
        f"{r.rss_mb[0]:.0f} → {r.rss_mb[1]:.0f} ({r.rss_growth:+.1%})",
        "< +10 %",
        r.rss_growth < 0.10,
    )
    report.add(
        "soak",
        "open file descriptors (after warm-up → end)",
        f"{r.fds[0]} → {r.fds[1]} ({r.fd_growth:+.1%})",
        "< +10 %",
        r.fd_growth < 0.10,
    )
