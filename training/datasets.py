"""Ranking labels from engagement events, and the time split into train / validation / held-out.

One row per shown item (a `recommendation.impression`); a recommendation request
is a ranking group. The label is the strongest engagement attributed to that
(request_id, item_id) by the same user:

    0  impression without action
    1  `recommendation.clicked`
    2  `plan.enrolled` or `workout.started` carrying the request_id in its properties
    3  `workout.completed` whose session_id belongs to such a started workout
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import polars as pl

IMPRESSION = "recommendation.impression"
CLICKED = "recommendation.clicked"
ENROLLED = "plan.enrolled"
STARTED = "workout.started"
COMPLETED = "workout.completed"
# The only event types the labels read; callers can filter on them at the source.
LABEL_EVENT_TYPES = (IMPRESSION, CLICKED, ENROLLED, STARTED, COMPLETED)
LABEL_COLUMNS = ["request_id", "user_id", "item_id", "event_timestamp", "position", "label"]
EVENT_COLUMNS = ["event_id", "event_type", "user_id", "item_id", "occurred_at", "properties"]


def _as_polars(events: pl.DataFrame | pd.DataFrame) -> pl.DataFrame:
    if isinstance(events, pd.DataFrame):
        events = events.copy()
        if len(events) and not isinstance(events["properties"].iloc[0], str):
            events["properties"] = events["properties"].map(json.dumps)
        events = pl.from_pandas(events)
    missing = [c for c in EVENT_COLUMNS if c not in events.columns]
    if missing:
        raise ValueError(f"events lack columns: {missing}")
    props = events.schema["properties"]
    if isinstance(props, pl.Struct):
        events = events.with_columns(pl.col("properties").struct.json_encode())
    elif props == pl.Object:
        events = events.with_columns(pl.col("properties").map_elements(json.dumps, return_dtype=pl.String))
    occurred = events.schema["occurred_at"]
    if occurred == pl.String:
        events = events.with_columns(pl.col("occurred_at").str.to_datetime(time_zone="UTC"))
    elif isinstance(occurred, pl.Datetime):
        ts = pl.col("occurred_at")
        events = events.with_columns(
            ts.dt.replace_time_zone("UTC") if occurred.time_zone is None else ts.dt.convert_time_zone("UTC")
        )
    return events.with_columns(pl.col("occurred_at").dt.cast_time_unit("us"))


def build_labels(events: pl.DataFrame | pd.DataFrame) -> pd.DataFrame:
    """One row per (request_id, item_id) shown, with its graded label; sorted by request time then position.

    `events` has the event log's columns (event_id, event_type, user_id, item_id,
    occurred_at, properties as a JSON string or dicts). Actions are attributed
    through the request_id they carry, never by time proximity, so an action
    outside any recommendation request labels nothing.
    """
    ev = _as_polars(events).filter(pl.col("event_type").is_in(LABEL_EVENT_TYPES))
    props = pl.col("properties")
    ev = ev.with_columns(
        request_id=props.str.json_path_match("$.request_id"),
        session_id=props.str.json_path_match("$.session_id"),
        position=props.str.json_path_match("$.position").cast(pl.Int64, strict=False),
    )
    key = ["request_id", "user_id", "item_id"]
    kind = pl.col("event_type")
    attributed = pl.col("request_id").is_not_null() & pl.col("item_id").is_not_null()

    # An item shown twice in one request (a client retry) is one row: the first showing.
    shown = (
        ev.filter((kind == IMPRESSION) & attributed)
        .sort("occurred_at")
        .unique(subset=["request_id", "item_id"], keep="first", maintain_order=True)
        .select(*key, event_timestamp=pl.col("occurred_at"), position=pl.col("position"))
    )
    clicks = ev.filter((kind == CLICKED) & attributed).select(*key, label=pl.lit(1))
    engaged = ev.filter(kind.is_in([ENROLLED, STARTED]) & attributed).select(*key, label=pl.lit(2))
    started = ev.filter((kind == STARTED) & attributed & pl.col("session_id").is_not_null()).select("session_id", *key)
    completed = (
        ev.filter((kind == COMPLETED) & pl.col("session_id").is_not_null())
        .select("session_id", "user_id")
        .join(started, on=["session_id", "user_id"], how="inner")
        .select(*key, label=pl.lit(3))
    )
    actions = pl.concat([clicks, engaged, completed], how="vertical_relaxed").group_by(key).agg(pl.col("label").max())
    labelled = (
        shown.join(actions, on=key, how="left")
        .with_columns(pl.col("label").fill_null(0).cast(pl.Int32), pl.col("position").fill_null(-1))
        .with_columns(request_ts=pl.col("event_timestamp").min().over("request_id"))
        .sort(["request_ts", "request_id", "position", "item_id"])
        .select(LABEL_COLUMNS)
    )
    frame = labelled.to_pandas()
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame


@dataclass(frozen=True)
class TimeSplit:
    """Whole request groups split by request time: train < valid_start <= valid < cutoff <= test."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    window_start: datetime
    valid_start: datetime
    cutoff: datetime
    window_end: datetime
    holdout_days: float

    def summary(self) -> dict[str, Any]:
        return {
            "window_start": self.window_start.isoformat(),
            "valid_start": self.valid_start.isoformat(),
            "cutoff": self.cutoff.isoformat(),
            "window_end": self.window_end.isoformat(),
            "holdout_days": round(self.holdout_days, 3),
            "train_rows": len(self.train),
            "valid_rows": len(self.valid),
            "test_rows": len(self.test),
            "train_groups": int(self.train["request_id"].nunique()),
            "valid_groups": int(self.valid["request_id"].nunique()),
            "test_groups": int(self.test["request_id"].nunique()),
        }


def split_by_time(
    labels: pd.DataFrame, *, holdout_days: float | None = None, valid_fraction: float = 0.15
) -> TimeSplit:
    """Hold out the last `holdout_days` of requests (default: the last 20% of the window).

    The validation slice (for early stopping) is the last `valid_fraction` of the
    remaining time, so no split sees a request later than the one after it. A
    request belongs wholly to one split, by the time of its first impression.
    """
    if labels.empty:
        raise ValueError("no labelled impressions to split")
    request_ts = labels.groupby("request_id", sort=False)["event_timestamp"].transform("min")
    start, end = request_ts.min().to_pydatetime(), request_ts.max().to_pydatetime()
    span = end - start
    holdout = timedelta(days=holdout_days) if holdout_days is not None else span * 0.2
    cutoff = end - holdout
    if cutoff <= start:
        raise ValueError(f"holdout of {holdout} leaves no training window (window is {span})")
    valid_start = cutoff - (cutoff - start) * valid_fraction
    is_test = request_ts >= cutoff
    is_valid = (request_ts >= valid_start) & ~is_test
    is_train = request_ts < valid_start
    parts = {
        name: labels[mask].reset_index(drop=True)
        for name, mask in (("train", is_train), ("valid", is_valid), ("test", is_test))
    }
    empty = [name for name, part in parts.items() if part.empty]
    if empty:
        raise ValueError(f"time split leaves {empty} empty (window {start} .. {end}, cutoff {cutoff})")
    return TimeSplit(
        train=parts["train"],
        valid=parts["valid"],
        test=parts["test"],
        window_start=start,
        valid_start=valid_start,
        cutoff=cutoff,
        window_end=end,
        holdout_days=holdout.total_seconds() / 86400,
    )
