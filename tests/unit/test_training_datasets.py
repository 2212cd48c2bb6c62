"""Labels from a hand-built event log, and the time split."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import polars as pl
import pytest

from training.datasets import build_labels, split_by_time

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def ev(event_type: str, user: str, item: str | None, minutes: float, **props: object) -> dict[str, object]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "user_id": user,
        "item_id": item,
        "occurred_at": T0 + timedelta(minutes=minutes),
        "properties": json.dumps(props),
    }


def shown(user: str, request: str, items: list[str], minutes: float = 0) -> list[dict[str, object]]:
    return [
        ev("recommendation.impression", user, item, minutes, request_id=request, position=i, model_version="1")
        for i, item in enumerate(items)
    ]


def hand_built_log() -> list[dict[str, object]]:
    events = shown("u1", "r1", ["a", "b", "c", "d", "e"])
    events += [
        ev("recommendation.clicked", "u1", "b", 1, request_id="r1", position=1),  # -> 1
        ev("recommendation.clicked", "u1", "c", 1, request_id="r1", position=2),
        ev("plan.enrolled", "u1", "c", 2, source="recommendation", request_id="r1"),  # -> 2
        ev("recommendation.clicked", "u1", "d", 1, request_id="r1", position=3),
        ev("workout.started", "u1", "d", 3, session_id="s-d", source="recommendation", request_id="r1"),
        ev(
            "workout.completed",
            "u1",
            "d",
            40,
            session_id="s-d",
            duration_min=30,
            total_sets=3,
            total_reps=30,
            calories=200,
        ),  # -> 3
        # Started from the recommendation but never completed: stays at 2.
        ev("workout.started", "u1", "e", 5, session_id="s-e", source="recommendation", request_id="r1"),
        # A free workout on item "a", completed: not attributed to the request, "a" stays 0.
        ev("workout.started", "u1", "a", 6, session_id="s-free", source="free"),
        ev(
            "workout.completed",
            "u1",
            "a",
            50,
            session_id="s-free",
            duration_min=30,
            total_sets=3,
            total_reps=30,
            calories=200,
        ),
    ]
    # A second request of another user, a day later, showing "a" again: its own group.
    events += shown("u2", "r2", ["a", "c"], minutes=24 * 60)
    events += [ev("recommendation.clicked", "u2", "a", 24 * 60 + 1, request_id="r2", position=0)]
    # Somebody else's action carrying r2 does not label u2's impression.
    events += [ev("plan.enrolled", "u3", "c", 24 * 60 + 2, source="recommendation", request_id="r2")]
    # Irrelevant event types are ignored.
    events += [ev("health_metric.synced", "u1", None, 10, day="2025-03-01", steps=5000)]
    return events


def test_each_label_level_is_attributed_through_the_request() -> None:
    labels = build_labels(pd.DataFrame(hand_built_log()))

    got = {(r.request_id, r.item_id): r.label for r in labels.itertuples()}
    assert got == {
        ("r1", "a"): 0,
        ("r1", "b"): 1,
        ("r1", "c"): 2,
        ("r1", "d"): 3,
        ("r1", "e"): 2,
        ("r2", "a"): 1,
        ("r2", "c"): 0,
    }
    assert list(labels.columns) == ["request_id", "user_id", "item_id", "event_timestamp", "position", "label"]
    assert list(labels["position"][:5]) == [0, 1, 2, 3, 4]
    assert str(labels["event_timestamp"].dt.tz) == "UTC"
    assert labels["event_timestamp"].iloc[0] == pd.Timestamp(T0)


def test_polars_input_with_string_timestamps_and_dict_properties_gives_the_same_labels() -> None:
    raw = hand_built_log()
    expected = build_labels(pd.DataFrame(raw))
    as_dicts = pd.DataFrame([{**e, "properties": json.loads(str(e["properties"]))} for e in raw])
    as_polars = pl.DataFrame([{**e, "occurred_at": e["occurred_at"].isoformat()} for e in raw])  # type: ignore[attr-defined]

    pd.testing.assert_frame_equal(build_labels(as_dicts), expected)
    pd.testing.assert_frame_equal(build_labels(as_polars), expected)


def test_a_retried_impression_is_one_row_at_the_first_showing() -> None:
    events = shown("u1", "r1", ["a", "b"]) + shown("u1", "r1", ["a"], minutes=3)
    labels = build_labels(pd.DataFrame(events))
    assert len(labels) == 2
    assert labels.loc[labels.item_id == "a", "event_timestamp"].iloc[0] == pd.Timestamp(T0)


def labels_over_days(days: int, per_day: int = 2) -> pd.DataFrame:
    rows = []
    for d in range(days):
        for r in range(per_day):
            ts = pd.Timestamp(T0 + timedelta(days=d, hours=r))
            for pos in range(3):
                rows.append(
                    {
                        "request_id": f"d{d}r{r}",
                        "user_id": "u",
                        "item_id": f"i{pos}",
                        "event_timestamp": ts + pd.Timedelta(seconds=pos),
                        "position": pos,
                        "label": pos % 2,
                    }
                )
    return pd.DataFrame(rows)


def test_time_split_keeps_groups_whole_and_in_time_order() -> None:
    labels = labels_over_days(10)
    split = split_by_time(labels, holdout_days=2)

    assert split.cutoff == split.window_end - timedelta(days=2)
    groups = [set(part.request_id) for part in (split.train, split.valid, split.test)]
    assert not (groups[0] & groups[1]) and not (groups[1] & groups[2]) and not (groups[0] & groups[2])
    assert sum(len(g) for g in groups) == labels.request_id.nunique()
    assert len(split.train) + len(split.valid) + len(split.test) == len(labels)
    assert split.train.event_timestamp.max() < split.valid.event_timestamp.min()
    assert split.valid.event_timestamp.max() < split.test.event_timestamp.min()
    # Requests of the last two days (whole days 8 and 9 minus the last hour's edge) are held out.
    assert set(split.test.request_id) == {"d7r1", "d8r0", "d8r1", "d9r0", "d9r1"}
    assert split.test.groupby("request_id").size().eq(3).all()


def test_default_holdout_is_a_fifth_of_the_window() -> None:
    split = split_by_time(labels_over_days(11, per_day=1))
    assert split.holdout_days == pytest.approx(2.0)
    assert set(split.test.request_id) == {"d8r0", "d9r0", "d10r0"}


def test_a_holdout_longer_than_the_window_is_refused() -> None:
    with pytest.raises(ValueError, match="no training window"):
        split_by_time(labels_over_days(3), holdout_days=5)
