"""The real Fitbit daily exports, as health_metric.synced events, pass the suites as health events."""

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from pipelines.validation import ValidationConfig, events_frame, validate_events

ROOT = Path(__file__).resolve().parents[2]
# The copy shipped with the platform's health importer, else the shared original beside the repository.
FITBIT = next(
    (
        p
        for p in (ROOT / "platform_api" / "health" / "data" / "fitbit", ROOT.parent / "shared" / "data" / "fitbit")
        if p.is_dir()
    ),
    ROOT / "platform_api" / "health" / "data" / "fitbit",
)
# The exports cover 2016-04-12 .. 2016-05-12; they are validated as of the day after.
EXPORTED = datetime(2016, 5, 13, tzinfo=UTC)

pytestmark = pytest.mark.skipif(not FITBIT.is_dir(), reason="Fitbit exports not on this machine")


def _read(name: str, date_column: str, fmt: str, values: dict[str, str]) -> pl.DataFrame:
    frame = pl.read_csv(FITBIT / name, infer_schema=False)
    return (
        frame.select(
            pl.col("Id").alias("fitbit_id"),
            pl.col(date_column).str.to_datetime(fmt).dt.date().alias("day"),
            *[pl.col(src).cast(pl.Float64).alias(dst) for src, dst in values.items()],
        )
        # A day may be logged twice (sleep, weight): the last entry wins.
        .unique(["fitbit_id", "day"], keep="last", maintain_order=True)
    )


def fitbit_events() -> tuple[list[dict], pl.DataFrame]:
    """A small test-side converter: one health_metric.synced per user-day, one user.created per user."""
    activity = (
        _read(
            "dailyActivity_merged.csv",
            "ActivityDate",
            "%m/%d/%Y",
            {"TotalSteps": "steps", "VeryActiveMinutes": "very", "FairlyActiveMinutes": "fairly"},
        )
        .with_columns((pl.col("very") + pl.col("fairly")).alias("active_minutes"))
        .drop("very", "fairly")
    )
    sleep = _read("sleepDay_merged.csv", "SleepDay", "%m/%d/%Y %I:%M:%S %p", {"TotalMinutesAsleep": "sleep_minutes"})
    weight = _read("weightLogInfo_merged.csv", "Date", "%m/%d/%Y %I:%M:%S %p", {"WeightKg": "weight_kg"})
    days = (
        activity.join(sleep, on=["fitbit_id", "day"], how="full", coalesce=True)
        .join(weight, on=["fitbit_id", "day"], how="full", coalesce=True)
        .sort("fitbit_id", "day")
    )
    events = []
    for fitbit_id, first_day in days.group_by("fitbit_id").agg(pl.col("day").min()).sort("fitbit_id").iter_rows():
        events.append(
            {
                "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"fitbit:user:{fitbit_id}")),
                "event_type": "user.created",
                "user_id": f"fitbit-{fitbit_id}",
                "occurred_at": datetime.combine(first_day, datetime.min.time(), tzinfo=UTC),
                "properties": {"goal": "general_fitness", "fitness_level": "beginner"},
            }
        )
    for row in days.iter_rows(named=True):
        props = {k: row[k] for k in ("steps", "active_minutes", "sleep_minutes", "weight_kg") if row[k] is not None}
        for k in ("steps", "active_minutes", "sleep_minutes"):
            if k in props:
                props[k] = int(props[k])
        events.append(
            {
                "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"fitbit:{row['fitbit_id']}:{row['day']}")),
                "event_type": "health_metric.synced",
                "user_id": f"fitbit-{row['fitbit_id']}",
                # Synced at the end of the day the values describe.
                "occurred_at": datetime.combine(row["day"], datetime.max.time(), tzinfo=UTC).replace(microsecond=0),
                "properties": {"day": row["day"].isoformat(), **props, "source": "fitbit"},
            }
        )
    return events, days


@pytest.fixture(scope="module")
def converted() -> tuple[list[dict], pl.DataFrame]:
    return fitbit_events()


def test_fitbit_exports_pass_as_health_events(converted: tuple[list[dict], pl.DataFrame]) -> None:
    events, days = converted
    out = validate_events(events_frame(events), known_users=set(), known_items=set(), now=EXPORTED)
    assert out.quarantined.is_empty(), out.quarantined["reasons"].to_list()[:5]
    health = out.by_type["health_metric.synced"]
    assert health.height == days.height > 900
    assert out.by_type["user.created"].height == days["fitbit_id"].n_unique() == 33
    first = health.filter((pl.col("user_id") == "fitbit-1503960366") & (pl.col("day") == datetime(2016, 4, 12).date()))
    assert first.select("steps", "active_minutes", "sleep_minutes").row(0) == (13162, 38, 327)
    weighed = health.filter(pl.col("weight_kg").is_not_null())
    assert weighed.height >= 60 and weighed["weight_kg"].min() > 50  # type: ignore[operator]


def test_the_age_limit_is_configurable(converted: tuple[list[dict], pl.DataFrame]) -> None:
    events, _ = converted
    health = events[-50:]
    sample = [e for e in events if e["event_type"] == "user.created" and e["user_id"] in {h["user_id"] for h in health}]
    sample += health
    today = datetime.now(UTC)
    strict = ValidationConfig(max_age=timedelta(days=5 * 365))
    aged = validate_events(events_frame(sample), known_users=set(), known_items=set(), now=today, config=strict)
    assert aged.report["stored"] == 0
    assert aged.report["rows_failing"]["occurred_at.too_old"] == len(sample)
    kept = validate_events(events_frame(sample), known_users=set(), known_items=set(), now=today)
    assert kept.report["stored"] == len(sample)
