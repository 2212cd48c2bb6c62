"""Validate a batch of events: duplicates skipped, failing rows quarantined with the expectations they broke."""

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from typing import TYPE_CHECKING, Any

import pandas as pd
import polars as pl

from pipelines.validation.contract import EVENT_TYPES, MAX_AGE, MAX_FUTURE_SKEW
from pipelines.validation.frames import (
    PLATFORM_COLUMNS,
    ROW,
    UTC_DATETIME,
    flatten,
    mark_unknown,
    normalise,
    raw_json,
    with_defaults,
)
from pipelines.validation.suites import (
    ENVELOPE_SUITE,
    INTRODUCES,
    LATEST,
    LATEST_DAY,
    OLDEST,
    suite_columns,
    validator,
)

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuiteValidationResult

QUARANTINE_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "event_id": pl.String,
    "event_type": pl.String,
    "reasons": pl.List(pl.String),
    "raw": pl.String,
}
VALID_COLUMNS = ("event_id", "event_type", "user_id", "item_id", "occurred_at", "properties")


class ConservationError(RuntimeError):
    """received != stored + quarantined + duplicates: rows were lost or counted twice."""


class SuiteError(RuntimeError):
    """An expectation could not be evaluated, so its failing rows are unknown."""


@dataclass(frozen=True)
class ValidationConfig:
    # The event contract's plausibility window, the one the API enforces too.
    max_age: timedelta = MAX_AGE
    max_future_skew: timedelta = MAX_FUTURE_SKEW


@dataclass
class ValidationOutcome:
    valid: pl.DataFrame  # canonical envelope rows that passed every expectation
    quarantined: pl.DataFrame  # event_id, event_type, reasons (expectation names), raw (JSON), + platform columns
    duplicates: int
    report: dict[str, Any]
    # The valid rows per event type, properties as typed columns with the contract's defaults filled in.
    by_type: dict[str, pl.DataFrame] = field(default_factory=dict)
    results: dict[str, "ExpectationSuiteValidationResult"] = field(default_factory=dict, repr=False)

    @property
    def received(self) -> int:
        return int(self.report["received"])


def _ge_frame(flat: pl.DataFrame, suite: str) -> pd.DataFrame:
    columns = [ROW, *suite_columns(suite)]
    frame = flat.select(columns)
    # GE compares calendar days with the datetime parameters.
    dates = [pl.col(c).cast(UTC_DATETIME) for c, t in frame.schema.items() if t == pl.Date]
    if dates:
        frame = frame.with_columns(dates)
    # An unnamed index makes GE report bare row numbers in unexpected_index_list.
    return frame.to_pandas().set_index(ROW).rename_axis(None)


def _raised(info: dict[str, Any] | None) -> str | None:
    if not info:
        return None
    entries = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for entry in entries:
        if entry.get("raised_exception"):
            return str(entry.get("exception_message"))
    return None


def _collect(suite: str, result: Any, reasons: dict[int, list[str]], checks: list[dict[str, Any]]) -> None:
    for r in result.results:
        config = r.expectation_config
        name = config.meta["name"]
        error = _raised(r.exception_info)
        if error is not None:
            raise SuiteError(f"suite {suite}: expectation {name} raised: {error}")
        rows = r.result.get("unexpected_index_list") or []
        count = r.result.get("unexpected_count") or 0
        if len(rows) != count:
            raise SuiteError(f"suite {suite}: expectation {name} reported {count} failures but {len(rows)} rows")
        for row in rows:
            reasons[int(row[ROW] if isinstance(row, dict) else row)].append(name)
        checks.append(
            {
                "suite": suite,
                "name": name,
                "expectation": config.type,
                "column": config.kwargs.get("column"),
                "success": bool(r.success),
                "checked": r.result.get("element_count"),
                "unexpected": count,
            }
        )


def _parameters(now: datetime, config: ValidationConfig) -> dict[str, Any]:
    tomorrow = datetime.combine(now.date() + timedelta(days=1), dtime(), tzinfo=UTC)
    return {
        LATEST: now + config.max_future_skew,
        OLDEST: now - config.max_age,
        LATEST_DAY: tomorrow,
    }


def validate_events(
    events: pl.DataFrame | pd.DataFrame,
    *,
    known_users: set[str],
    known_items: set[str],
    now: datetime,
    seen_ids: set[str] | None = None,
    config: ValidationConfig | None = None,
) -> ValidationOutcome:
    """Run the envelope suite and each event type's suite over a batch; quarantine what fails.

    `seen_ids` are event ids handled before (already exported): like a repeat within
    the batch, they are counted as duplicates and skipped. Raises ConservationError if
    received != stored + quarantined + duplicates.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    config = config or ValidationConfig()
    started = time.perf_counter()
    frame = normalise(events)
    received = frame.height

    repeated = pl.col("event_id").is_first_distinct().not_()
    if seen_ids:
        repeated = repeated | pl.col("event_id").is_in(pl.Series(list(seen_ids), dtype=pl.String))
    frame = frame.with_columns((pl.col("event_id").is_not_null() & repeated).alias("__duplicate"))
    duplicates = int(frame["__duplicate"].sum())
    work = frame.filter(~pl.col("__duplicate")).drop("__duplicate")

    gx = validator()
    ge_started = time.perf_counter()
    reasons: dict[int, list[str]] = defaultdict(list)
    checks: list[dict[str, Any]] = []
    results: dict[str, Any] = {}
    users, items = set(known_users), set(known_items)
    parameters = _parameters(now, config)
    if work.height:
        results[ENVELOPE_SUITE] = gx.run(ENVELOPE_SUITE, _ge_frame(work, ENVELOPE_SUITE), parameters)
        _collect(ENVELOPE_SUITE, results[ENVELOPE_SUITE], reasons, checks)

    flats: dict[str, pl.DataFrame] = {}
    present = set(work["event_type"].drop_nulls().unique().to_list()) & set(EVENT_TYPES)
    # Types that introduce users or items first, so later rows of the batch may refer to them.
    for event_type in [t for t in dict.fromkeys((*INTRODUCES, *EVENT_TYPES)) if t in present]:
        flat = flatten(work.filter(pl.col("event_type") == event_type), event_type)
        flat = mark_unknown(flat, users=users, items=items)
        flats[event_type] = flat
        results[event_type] = gx.run(event_type, _ge_frame(flat, event_type), parameters)
        _collect(event_type, results[event_type], reasons, checks)
        if event_type in INTRODUCES:
            column = INTRODUCES[event_type]
            passed = flat.filter(~pl.col(ROW).is_in(list(reasons)))[column].drop_nulls()
            (users if column == "user_id" else items).update(passed.to_list())
            parameters = _parameters(now, config)
    ge_seconds = time.perf_counter() - ge_started

    bad = pl.Series(ROW, list(reasons), dtype=pl.Int64)
    platform = [c for c in PLATFORM_COLUMNS if c in work.columns]
    valid = work.filter(~pl.col(ROW).is_in(bad)).select([*VALID_COLUMNS, *platform])
    by_type = {t: with_defaults(flat.filter(~pl.col(ROW).is_in(bad)), t) for t, flat in flats.items()}
    failed = work.filter(pl.col(ROW).is_in(bad)).sort(ROW)
    quarantined = pl.DataFrame(
        {
            "event_id": failed["event_id"],
            "event_type": failed["event_type"],
            "reasons": [reasons[row] for row in failed[ROW].to_list()],
            "raw": raw_json(failed),
        },
        schema=QUARANTINE_SCHEMA,
    ).with_columns([failed[c] for c in platform])

    stored = valid.height
    typed_rows = sum(f.height for f in by_type.values())
    if received != stored + quarantined.height + duplicates or typed_rows != stored:
        raise ConservationError(
            f"received {received} != stored {stored} + quarantined {quarantined.height} + duplicates {duplicates}"
            f" (typed rows {typed_rows})"
        )
    failures: dict[str, int] = defaultdict(int)
    for names in reasons.values():
        for name in set(names):
            failures[name] += 1
    report = {
        "now": now.isoformat(),
        "received": received,
        "stored": stored,
        "quarantined": quarantined.height,
        "duplicates": duplicates,
        "seconds": round(time.perf_counter() - started, 4),
        "ge_seconds": round(ge_seconds, 4),
        "by_type": {
            t: {"stored": by_type[t].height, "quarantined": int((failed["event_type"] == t).sum())}
            for t in sorted(flats)
        },
        "rows_failing": dict(sorted(failures.items())),
        "checks": checks,
    }
    return ValidationOutcome(
        valid=valid, quarantined=quarantined, duplicates=duplicates, report=report, by_type=by_type, results=results
    )
