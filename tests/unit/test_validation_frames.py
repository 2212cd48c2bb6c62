"""The transform under the suites: envelope normalisation and per-type flattening never raise on bad input."""

import json
from datetime import UTC, date, datetime, timedelta, timezone

import pandas as pd
import polars as pl
import pytest

from pipelines.validation.frames import events_frame, flatten, normalise


def _frame(rows: list[dict]) -> pl.DataFrame:
    return normalise(events_frame(rows))


def _logged(**props: object) -> dict:
    base = {"session_id": "s", "exercise_id": "e", "sets": 3}
    return {
        "event_id": "x",
        "event_type": "exercise.logged",
        "user_id": "u",
        "occurred_at": "2025-01-01T00:00:00Z",
        "properties": {**base, **props},
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-01-02T03:04:05Z", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2025-01-02T03:04:05.250+02:00", datetime(2025, 1, 2, 1, 4, 5, 250000, tzinfo=UTC)),
        ("2025-01-02 03:04:05+00:00", datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (
            datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5))),
            datetime(2025, 1, 2, 8, 4, 5, tzinfo=UTC),
        ),
    ],
)
def test_occurred_at_is_read_as_utc(text: object, expected: datetime) -> None:
    row = _frame([{"event_id": "x", "occurred_at": text}]).row(0, named=True)
    assert row["occurred_at"] == expected and row["occurred_at__unparsed"] is None


@pytest.mark.parametrize("text", ["2025-01-02T03:04:05", "yesterday", "2025-13-45T00:00:00Z"])
def test_unreadable_or_naive_timestamps_are_kept_as_text(text: str) -> None:
    row = _frame([{"event_id": "x", "occurred_at": text}]).row(0, named=True)
    assert row["occurred_at"] is None and row["occurred_at__unparsed"] == text


def test_properties_that_are_not_a_json_object_are_flagged() -> None:
    frame = _frame([{"properties": p} for p in ['{"a": 1}', "{bad", "[1, 2]", "7", None, {"b": [1]}]])
    assert frame["properties__unparsed"].to_list() == [None, "{bad", "[1, 2]", "7", None, None]
    assert frame["properties"][4] == "{}"  # absent properties are the empty object


def test_typed_frames_are_accepted_too() -> None:
    events = pd.DataFrame(
        {
            "event_id": ["ABC"],
            "event_type": ["content.viewed"],
            "user_id": [7],
            "occurred_at": [pd.Timestamp("2025-01-02 03:04:05", tz="Europe/Paris")],
            "properties": [json.dumps({"seconds": 5})],
            "received_at": [pd.Timestamp("2025-01-02 03:05:00", tz="UTC")],
        }
    )
    row = normalise(events).row(0, named=True)
    assert row["event_id"] == "abc" and row["user_id"] == "7"
    assert row["occurred_at"] == datetime(2025, 1, 2, 2, 4, 5, tzinfo=UTC)
    assert row["received_at"] == datetime(2025, 1, 2, 3, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "typed", "unparsed"),
    [
        (12, 12, None),
        ("12", 12, None),
        (1e2, 100, None),
        (2.5, None, "2.5"),
        ("many", None, "many"),
        (True, None, "true"),
        (2**60, None, str(2**60)),
    ],
)
def test_integers_follow_the_contract(value: object, typed: object, unparsed: object) -> None:
    row = flatten(_frame([_logged(reps=value)]), "exercise.logged").row(0, named=True)
    assert (row["reps"], row["reps__unparsed"]) == (typed, unparsed)


def test_non_finite_numbers_are_not_numbers() -> None:
    # NaN, Infinity and overflowing literals are not JSON the reader accepts: the document is unreadable.
    overflow = {**_logged(), "properties": '{"session_id": "s", "exercise_id": "e", "sets": 3, "weight_kg": 1e400}'}
    frame = _frame([_logged(weight_kg=float("nan")), _logged(weight_kg=float("inf")), overflow])
    assert frame["properties__unparsed"].null_count() == 0
    # As strings they would parse to floats: they must not pass as weights (a range check ignores NaN).
    flat = flatten(_frame([_logged(weight_kg="NaN"), _logged(weight_kg="-inf")]), "exercise.logged")
    assert flat["weight_kg"].to_list() == [None, None]
    assert flat["weight_kg__unparsed"].to_list() == ["NaN", "-inf"]


def test_fast_and_robust_paths_read_the_same_values() -> None:
    rows = [_logged(reps=i, weight_kg=i * 2.5, rpe=7, duration_s=str(i)) for i in range(20)]
    fast = flatten(_frame(rows), "exercise.logged")
    # One nested value makes the one-shot decode fail: the partition is read path by path instead.
    robust = flatten(_frame([*rows, _logged(reps={"nested": 1})]), "exercise.logged").head(len(rows))
    assert fast.drop("__row").equals(robust.drop("__row"))
    assert robust.schema["reps"] == pl.Int64 and fast["duration_s"].to_list() == list(range(20))


def test_lists_must_be_arrays_of_strings() -> None:
    rows = [
        {"event_type": "user.created", "properties": {"goal": "endurance", "fitness_level": "beginner", "equipment": e}}
        for e in (["dumbbell", 'say "hi"'], "dumbbell", [1], [])
    ]
    flat = flatten(_frame(rows), "user.created")
    assert flat["equipment"].to_list() == [["dumbbell", 'say "hi"'], None, None, []]
    assert flat["equipment__unparsed"].to_list() == [None, "dumbbell", "[1]", None]


def test_days_are_dates() -> None:
    rows = [{"event_type": "health_metric.synced", "properties": {"day": d}} for d in ("2016-04-12", "4/12/2016")]
    flat = flatten(_frame(rows), "health_metric.synced")
    assert flat["day"].to_list() == [date(2016, 4, 12), None]
    assert flat["day__unparsed"].to_list() == [None, "4/12/2016"]
