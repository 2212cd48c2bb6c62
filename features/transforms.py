"""Pure polars transforms: event log + catalogue → daily, point-in-time correct feature tables.

Every table is keyed by its entity and `event_timestamp`. Windowed tables hold
one row per entity per calendar day (UTC) from its first event until its
windows are empty again (HISTORY_DAYS after its last event) or until `as_of`.
The row of a finished day D is stamped D+1 00:00 and is computed from events
that occurred before that instant; the row of the day containing `as_of` is
stamped `as_of` and computed from events up to `as_of`. A training label at
time T therefore only ever joins a row built from events before T.
"""

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from features.schema import (
    AFFINITY_PRIOR,
    CATEGORIES,
    CATEGORY_AFFINITY_COLUMNS,
    CATEGORY_INTENSITY,
    ENGAGEMENT_WEIGHTS,
    FEATURE_EPOCH,
    HISTORY_DAYS,
    INT_COLUMNS,
    LEVEL_AFFINITY_COLUMNS,
    LEVELS,
    MIX_COLUMNS,
    PROFILE_EVENT_TYPES,
    RECENT_ACTIONS,
    RECENT_ITEMS_TABLE,
    STRING_COLUMNS,
    TABLES,
    TIMESTAMP,
)

Frame = pl.DataFrame | pl.LazyFrame
UTC_TS = pl.Datetime("us", "UTC")
EVENT_SCHEMA = pl.Schema(
    {
        "event_id": pl.String(),
        "event_type": pl.String(),
        "user_id": pl.String(),
        "item_id": pl.String(),
        "occurred_at": UTC_TS,
        "properties": pl.String(),
    }
)
ITEM_SCHEMA = pl.Schema(
    {
        "item_id": pl.String(),
        "item_type": pl.String(),
        "title": pl.String(),
        "category": pl.String(),
        "level": pl.String(),
        "goal": pl.String(),
        "equipment": pl.List(pl.String()),
        "muscles": pl.List(pl.String()),
        "duration_min": pl.Int64(),
        "premium": pl.Boolean(),
    }
)
_WORKOUT_PROPS = pl.Struct({"duration_min": pl.Float64, "rpe": pl.Float64, "category": pl.String})
_HEALTH_PROPS = pl.Struct({"steps": pl.Float64, "resting_hr": pl.Float64, "sleep_minutes": pl.Float64})
_PROFILE_PROPS = pl.Struct(
    {"goal": pl.String(), "fitness_level": pl.String, "equipment": pl.List(pl.String()), "session_minutes": pl.Int64}
)


# --- inputs -----------------------------------------------------------------------------------------------------


def events_frame(rows: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """Events as dicts → the events frame.

    Accepts event log rows and API envelopes alike: `event_id` a UUID or a
    string, `occurred_at` an aware datetime or an ISO 8601 string, `properties`
    a dict or a JSON string.
    """
    records = [
        {
            "event_id": str(r["event_id"]),
            "event_type": r["event_type"],
            "user_id": r.get("user_id"),
            "item_id": r.get("item_id"),
            "occurred_at": _timestamp(r["occurred_at"]),
            "properties": p if isinstance(p := r.get("properties"), str) else json.dumps(p or {}),
        }
        for r in rows
    ]
    return pl.DataFrame(records, schema=EVENT_SCHEMA, orient="row") if records else pl.DataFrame(schema=EVENT_SCHEMA)


def _timestamp(value: datetime | str) -> datetime:
    stamp = datetime.fromisoformat(value) if isinstance(value, str) else value
    if stamp.tzinfo is None:
        raise ValueError(f"occurred_at without a timezone: {value!r}")
    return stamp


def items_frame(rows: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """Rows of `Item.as_row()` → the items frame (equipment and muscles as lists)."""
    records = [
        {
            **{k: r.get(k) for k in ITEM_SCHEMA},
            "equipment": list(r.get("equipment") or ()),
            "muscles": list(r.get("muscles") or ()),
        }
        for r in rows
    ]
    return pl.DataFrame(records, schema=ITEM_SCHEMA, orient="row") if records else pl.DataFrame(schema=ITEM_SCHEMA)


def _events(events: Frame, as_of: datetime) -> pl.LazyFrame:
    return (
        events.lazy()
        .with_columns(pl.col("occurred_at").cast(UTC_TS))
        .filter(pl.col("occurred_at") <= as_of)
        .with_columns(day=pl.col("occurred_at").dt.date())
    )


def _as_of(as_of: datetime) -> datetime:
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware (UTC)")
    return as_of.astimezone(UTC)


# --- the daily grid ---------------------------------------------------------------------------------------------


def _daily_grid(daily: pl.LazyFrame, key: str, as_of: datetime) -> pl.LazyFrame:
    """One row per entity and day, first event day → min(as_of day, last event day + HISTORY_DAYS)."""
    as_of_day = as_of.date()
    spans = daily.group_by(key).agg(first=pl.col("day").min(), last=pl.col("day").max())
    end = pl.min_horizontal(pl.lit(as_of_day), pl.col("last") + timedelta(days=HISTORY_DAYS))
    grid = spans.select(key, day=pl.date_ranges("first", end)).explode("day")
    counts = [c for c in daily.collect_schema().names() if c not in (key, "day")]
    return grid.join(daily, on=[key, "day"], how="left").with_columns(pl.col(counts).fill_null(0)).sort(key, "day")


def _stamp(as_of: datetime) -> pl.Expr:
    end_of_day = (pl.col("day") + timedelta(days=1)).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    return pl.when(pl.col("day") == pl.lit(as_of.date())).then(pl.lit(as_of, dtype=UTC_TS)).otherwise(end_of_day)


def _rolling(col: str, days: int, key: str) -> pl.Expr:
    # The grid has exactly one row per day, so a window of n rows is n days.
    return pl.col(col).rolling_sum(days, min_samples=1).over(key)


def _ratio(num: pl.Expr, den: pl.Expr) -> pl.Expr:
    return pl.when(den > 0).then(num / den).otherwise(0.0)


def _dtype(column: str) -> pl.DataType:
    return pl.String() if column in STRING_COLUMNS else pl.Int64() if column in INT_COLUMNS else pl.Float64()


def _with_epoch_row(frame: pl.LazyFrame, table: str, key: str) -> pl.LazyFrame:
    """Prepend an all-null row per entity stamped FEATURE_EPOCH.

    Feast's file offline store drops an entity row from a training set when the
    entity has feature rows but all of them are newer than the label; with this
    row the label gets "nothing known yet" (nulls, filled like a missing entity).
    """
    cols = TABLES[table][1]
    empty = (
        frame.select(key)
        .unique()
        .with_columns(
            pl.lit(FEATURE_EPOCH, dtype=UTC_TS).alias(TIMESTAMP),
            *[pl.lit(None, dtype=_dtype(c)).alias(c) for c in cols],
        )
    )
    return pl.concat([empty, frame], how="vertical")


def _finish(frame: pl.LazyFrame, table: str, key: str, as_of: datetime) -> pl.DataFrame:
    cols = TABLES[table][1]
    rows = frame.with_columns(_stamp(as_of).alias(TIMESTAMP)).select(
        key, TIMESTAMP, *[pl.col(c).cast(_dtype(c)) for c in cols]
    )
    return _with_epoch_row(rows, table, key).sort(key, TIMESTAMP).collect()


# --- item lookups -----------------------------------------------------------------------------------------------


def _item_attrs(items: Frame) -> pl.LazyFrame:
    return items.lazy().select("item_id", item_cat=pl.col("category"), item_lvl=pl.col("level"))


# --- tables -----------------------------------------------------------------------------------------------------


def user_profile(events: Frame, *, as_of: datetime) -> pl.DataFrame:
    """The profile as given at sign-up or changed since, stamped when it was given; the latest wins.

    Both event types carry the whole profile, so a row needs no older event
    (the online push sees only recent ones). Of two at the same instant the
    update wins.
    """
    as_of = _as_of(as_of)
    frame = (
        _events(events, as_of)
        .filter(pl.col("event_type").is_in(PROFILE_EVENT_TYPES))
        .sort("user_id", "occurred_at", pl.col("event_type") == "user.profile_updated", maintain_order=True)
        .with_columns(p=pl.col("properties").str.json_decode(_PROFILE_PROPS))
        .select(
            "user_id",
            pl.col("occurred_at").alias(TIMESTAMP),
            goal=pl.col("p").struct.field("goal"),
            fitness_level=pl.col("p").struct.field("fitness_level"),
            equipment=pl.col("p").struct.field("equipment").list.sort().list.join(",").fill_null(""),
            session_minutes=pl.col("p").struct.field("session_minutes").fill_null(30),
        )
        .unique(subset=["user_id", TIMESTAMP], keep="last", maintain_order=True)
    )
    rows = frame.select("user_id", TIMESTAMP, *[pl.col(c).cast(_dtype(c)) for c in TABLES["user_profile"][1]])
    return _with_epoch_row(rows, "user_profile", "user_id").sort("user_id", TIMESTAMP).collect()


def user_workout_stats(events: Frame, items: Frame, *, as_of: datetime) -> pl.DataFrame:
    """Training volume, effort, streak, recency and category mix of completed workouts."""
    as_of = _as_of(as_of)
    workouts = (
        _events(events, as_of)
        .filter(pl.col("event_type") == "workout.completed")
        .with_columns(p=pl.col("properties").str.json_decode(_WORKOUT_PROPS))
        .join(_item_attrs(items), on="item_id", how="left")
        .with_columns(
            minutes=pl.col("p").struct.field("duration_min"),
            rpe=pl.col("p").struct.field("rpe"),
            cat=pl.coalesce(pl.col("p").struct.field("category"), pl.col("item_cat")),
        )
    )
    daily = workouts.group_by("user_id", "day").agg(
        pl.len().alias("n"),
        pl.col("minutes").sum(),
        pl.col("rpe").sum().alias("rpe_sum"),
        pl.col("rpe").count().alias("rpe_n"),
        *[(pl.col("cat") == c).sum().alias(f"n_{m}") for c, m in zip(CATEGORIES, MIX_COLUMNS, strict=True)],
    )
    key = "user_id"
    has = pl.col("n") > 0
    # Runs of workout days: a new group starts at every rest day.
    run_group = (~has).cum_sum().over(key)
    frame = (
        _daily_grid(daily, key, as_of)
        .with_columns(run=pl.when(has).then(has.cast(pl.Int64).cum_sum().over(key, run_group)).otherwise(0))
        .with_columns(
            workouts_7d=_rolling("n", 7, key),
            workouts_28d=_rolling("n", 28, key),
            minutes_7d=_rolling("minutes", 7, key),
            minutes_28d=_rolling("minutes", 28, key),
            rpe_sum_28=_rolling("rpe_sum", 28, key),
            rpe_n_28=_rolling("rpe_n", 28, key),
            # A streak stays alive through the day after the last workout day.
            streak_days=pl.when(has)
            .then(pl.col("run"))
            .otherwise(pl.col("run").shift(1).over(key).fill_null(0))
            .clip(upper_bound=HISTORY_DAYS),
            last_day=pl.when(has).then(pl.col("day")).forward_fill().over(key),
            **{f"{m}_28": _rolling(f"n_{m}", 28, key) for m in MIX_COLUMNS},
        )
        .with_columns(
            avg_rpe_28d=_ratio(pl.col("rpe_sum_28"), pl.col("rpe_n_28")),
            days_since_last_workout=(pl.col("day") - pl.col("last_day"))
            .dt.total_days()
            .fill_null(HISTORY_DAYS)
            .clip(upper_bound=HISTORY_DAYS),
            **{m: _ratio(pl.col(f"{m}_28"), pl.col("workouts_28d")) for m in MIX_COLUMNS},
        )
    )
    return _finish(frame, "user_workout_stats", key, as_of)


def user_health(events: Frame, *, as_of: datetime) -> pl.DataFrame:
    """Steps, resting heart rate (level, trend, yesterday's deviation), sleep, training load and a recovery score.

    Health values come from the daily syncs; the training load of the last 3
    days is the session-RPE load of completed workouts (hours x RPE / 10).
    The recovery score in [0, 1] combines the last sleep and the last resting
    heart rate, each against the user's own 4-week level, and that load; it is
    0.5 (unknown) while neither sleep nor heart rate has been synced for a week.
    """
    as_of = _as_of(as_of)
    metrics = ("steps", "resting_hr", "sleep_minutes")
    evs = _events(events, as_of)
    synced = (
        evs.filter(pl.col("event_type") == "health_metric.synced")
        .with_columns(p=pl.col("properties").str.json_decode(_HEALTH_PROPS))
        .with_columns(**{m: pl.col("p").struct.field(m) for m in metrics})
    )
    health_daily = synced.group_by("user_id", "day").agg(
        *[pl.col(m).sum().alias(f"{m}_sum") for m in metrics],
        *[pl.col(m).count().alias(f"{m}_n") for m in metrics],
    )
    load_daily = (
        evs.filter(pl.col("event_type") == "workout.completed")
        .with_columns(p=pl.col("properties").str.json_decode(_WORKOUT_PROPS))
        .with_columns(
            load=(pl.col("p").struct.field("duration_min") / 60.0 * pl.col("p").struct.field("rpe").fill_null(5.0) / 10)
        )
        .group_by("user_id", "day")
        .agg(pl.col("load").sum().fill_null(0.0))
    )
    daily = health_daily.join(load_daily, on=["user_id", "day"], how="full", coalesce=True).with_columns(
        pl.col("load").fill_null(0.0), *[pl.col(f"{m}_{a}").fill_null(0) for m in metrics for a in ("sum", "n")]
    )
    key = "user_id"

    def mean(metric: str, days: int) -> pl.Expr:
        n = _rolling(f"{metric}_n", days, key)
        return pl.when(n > 0).then(_rolling(f"{metric}_sum", days, key) / n).otherwise(None)

    # Sleep against the user's own 4-week level: 50 min short → 0, 50 min more → 1 (until a
    # baseline exists: 5 h → 0, 8 h → 1). Resting HR 4 bpm above its 4-week level → 0, 4 below
    # → 1. Load: none → 1, 2 hours at RPE 10 (or 4 at RPE 5) in 3 days → 0.
    absolute = (pl.col("sleep_7d_avg") - 300.0) / 180.0
    sleep_score = pl.coalesce(0.5 + pl.col("sleep_delta_1d") / 100.0, absolute).clip(0.0, 1.0).fill_null(0.5)
    hr_seen = pl.coalesce("resting_hr_delta_1d", "resting_hr_trend")
    hr_score = (0.5 - hr_seen / 8.0).clip(0.0, 1.0).fill_null(0.5)
    load_score = (1.0 - pl.col("training_load_3d") / 2.0).clip(0.0, 1.0)
    known = pl.col("sleep_7d_avg").is_not_null() | pl.col("resting_hr_7d_avg").is_not_null()
    frame = (
        _daily_grid(daily, key, as_of)
        .with_columns(
            steps_7d_avg=mean("steps", 7),
            resting_hr_7d_avg=mean("resting_hr", 7),
            sleep_7d_avg=mean("sleep_minutes", 7),
            sleep_1d=mean("sleep_minutes", 1),
            sleep_28d=mean("sleep_minutes", 28),
            resting_hr_1d=mean("resting_hr", 1),
            resting_hr_28d=mean("resting_hr", 28),
            training_load_3d=_rolling("load", 3, key),
        )
        .with_columns(
            resting_hr_trend=pl.col("resting_hr_7d_avg") - pl.col("resting_hr_28d"),
            resting_hr_delta_1d=pl.col("resting_hr_1d") - pl.col("resting_hr_28d"),
            sleep_delta_1d=pl.col("sleep_1d") - pl.col("sleep_28d"),
        )
        .with_columns(
            recovery_score=pl.when(known).then(0.45 * sleep_score + 0.35 * hr_score + 0.2 * load_score).otherwise(0.5)
        )
    )
    return _finish(frame, "user_health", key, as_of)


def user_engagement(events: Frame, items: Frame, *, as_of: datetime) -> pl.DataFrame:
    """Recommendation impressions, clicks and CTR; smoothed affinity per category and per level (28 days)."""
    as_of = _as_of(as_of)
    weights = pl.DataFrame({"event_type": list(ENGAGEMENT_WEIGHTS), "w": list(ENGAGEMENT_WEIGHTS.values())}).lazy()
    evs = (
        _events(events, as_of)
        .filter(pl.col("event_type").is_in(["recommendation.impression", *ENGAGEMENT_WEIGHTS]))
        .filter(pl.col("user_id").is_not_null())
        .join(weights, on="event_type", how="left")
        .join(_item_attrs(items), on="item_id", how="left")
        .with_columns(pl.col("w").fill_null(0.0))
    )
    w = pl.col("w")
    daily = evs.group_by("user_id", "day").agg(
        (pl.col("event_type") == "recommendation.impression").sum().alias("impressions"),
        (pl.col("event_type") == "recommendation.clicked").sum().alias("clicks"),
        *[
            (w * (pl.col("item_cat") == c).fill_null(False)).sum().alias(f"w_{a}")
            for c, a in zip(CATEGORIES, CATEGORY_AFFINITY_COLUMNS, strict=True)
        ],
        *[
            (w * (pl.col("item_lvl") == lv).fill_null(False)).sum().alias(f"w_{a}")
            for lv, a in zip(LEVELS, LEVEL_AFFINITY_COLUMNS, strict=True)
        ],
    )
    key = "user_id"
    cat_total = pl.sum_horizontal(*[pl.col(f"{a}_28") for a in CATEGORY_AFFINITY_COLUMNS])
    lvl_total = pl.sum_horizontal(*[pl.col(f"{a}_28") for a in LEVEL_AFFINITY_COLUMNS])
    k_cat, k_lvl = len(CATEGORIES), len(LEVELS)
    frame = (
        _daily_grid(daily, key, as_of)
        .with_columns(
            impressions_28d=_rolling("impressions", 28, key),
            clicks_28d=_rolling("clicks", 28, key),
            **{f"{a}_28": _rolling(f"w_{a}", 28, key) for a in (*CATEGORY_AFFINITY_COLUMNS, *LEVEL_AFFINITY_COLUMNS)},
        )
        .with_columns(
            ctr_28d=_ratio(pl.col("clicks_28d"), pl.col("impressions_28d")),
            **{
                a: (pl.col(f"{a}_28") + AFFINITY_PRIOR / k_cat) / (cat_total + AFFINITY_PRIOR)
                for a in CATEGORY_AFFINITY_COLUMNS
            },
            **{
                a: (pl.col(f"{a}_28") + AFFINITY_PRIOR / k_lvl) / (lvl_total + AFFINITY_PRIOR)
                for a in LEVEL_AFFINITY_COLUMNS
            },
        )
    )
    return _finish(frame, "user_engagement", key, as_of)


def item_stats(events: Frame, *, as_of: datetime) -> pl.DataFrame:
    """Per item over 7 and 28 days: impressions, clicks, enrolls/starts, completions, popularity, CTR, completion."""
    as_of = _as_of(as_of)
    t = pl.col("event_type")
    daily = (
        _events(events, as_of)
        .filter(pl.col("item_id").is_not_null() & pl.col("user_id").is_not_null())
        .filter(t.is_in(["recommendation.impression", *ENGAGEMENT_WEIGHTS]))
        .group_by("item_id", "day")
        .agg(
            impressions=(t == "recommendation.impression").sum(),
            clicks=(t == "recommendation.clicked").sum(),
            enrolls=t.is_in(["plan.enrolled", "workout.started"]).sum(),
            completions=(t == "workout.completed").sum(),
            popularity=t.is_in(list(ENGAGEMENT_WEIGHTS)).sum(),
        )
    )
    key = "item_id"
    counts = ("impressions", "clicks", "enrolls", "completions", "popularity")
    frame = (
        _daily_grid(daily, key, as_of)
        .with_columns(
            **{f"item_{c}_{d}d": _rolling(c, d, key) for c in counts for d in (7, 28)},
        )
        .with_columns(
            item_ctr_28d=_ratio(pl.col("item_clicks_28d"), pl.col("item_impressions_28d")),
            item_completion_rate_28d=_ratio(pl.col("item_completions_28d"), pl.col("item_enrolls_28d")).clip(
                upper_bound=1.0
            ),
        )
    )
    return _finish(frame, "item_stats", key, as_of)


# Actions in the order json.dumps(sort_keys=True) puts them.
_ACTION_ORDER = {a: i for i, a in enumerate(sorted(RECENT_ACTIONS.values()))}


def _day_key(user: str, day: str) -> pl.Expr:
    """One sortable integer per (user number, day): users apart by more days than a calendar holds."""
    return pl.col(user) * 10_000_000 + pl.col(day).cast(pl.Int64) + 1_000_000


def user_recent_items(events: Frame, *, as_of: datetime) -> pl.DataFrame:
    """Per user, the items acted on in the last HISTORY_DAYS with the newest time of each action, as JSON.

    `recent_items` is `{"<item_id>": {"<action>": <epoch s>, ...}, ...}` (actions
    of RECENT_ACTIONS), compact with sorted keys: equal to `json.dumps(value,
    sort_keys=True, separators=(",", ":"))`. A row is written on the days the
    value changes: the days of actions and the days an action leaves the
    window (an action of day E counts through day E + HISTORY_DAYS - 1), so
    the table stays as small as the history it describes; between two rows
    the older one holds. Stamps and the epoch row are those of the windowed tables.
    """
    as_of = _as_of(as_of)
    acts = (
        _events(events, as_of)
        .filter(pl.col("event_type").is_in(list(RECENT_ACTIONS)))
        .filter(pl.col("user_id").is_not_null() & pl.col("item_id").is_not_null())
        .group_by("user_id", "item_id", pl.col("event_type").replace_strict(RECENT_ACTIONS).alias("action"), "day")
        .agg(at=pl.col("occurred_at").max().dt.epoch("s"))
        # Each action's newest time holds from its day until the next one's day or until it leaves the window.
        .with_columns(
            end=pl.min_horizontal(
                pl.col("day").shift(-1).over("user_id", "item_id", "action", order_by="day"),
                pl.col("day") + timedelta(days=HISTORY_DAYS),
            )
        )
        .collect()
    )
    key = "user_id"
    users = acts.select(key).unique().with_row_index("user").with_columns(pl.col("user").cast(pl.Int64))
    acts = acts.join(users, on=key)
    changes = (
        pl.concat([acts.select(key, "user", "day"), acts.select(key, "user", day=pl.col("end"))])
        .filter(pl.col("day") <= as_of.date())
        .unique()
        .with_columns(k=_day_key("user", "day"))
        .sort("k")
    )
    # The change days each action's time holds on, by binary search in the sorted (user, day) keys.
    keys = changes.get_column("k")
    spans = acts.with_columns(
        lo=keys.search_sorted(acts.select(_day_key("user", "day")).to_series(), side="left"),
        hi=keys.search_sorted(acts.select(_day_key("user", "end")).to_series(), side="left"),
    )
    # Item keys as JSON strings, ordered as json.dumps(sort_keys=True) orders them (code points).
    names = spans.select("item_id").unique().sort("item_id").with_row_index("item")
    names = names.with_columns(name=pl.Series([json.dumps(i) for i in names["item_id"].to_list()], dtype=pl.String()))
    held = (
        spans.join(names, on="item_id")
        .select(
            "item",
            "name",
            pl.col("action").replace_strict(_ACTION_ORDER, return_dtype=pl.Int8()).alias("order"),
            pair=pl.concat_str(pl.lit('"'), "action", pl.lit('":'), pl.col("at").cast(pl.String)),
            row=pl.int_ranges("lo", "hi"),
        )
        .explode("row")
        .drop_nulls("row")
        .sort("row", "item", "order")
    )
    # One pass of fragments: `"item":{` opens an item's object, `}` closes it, commas between.
    row, item = pl.col("row"), pl.col("item")
    opens = (row != row.shift(1)) | (item != item.shift(1))
    closes = (row != row.shift(-1)) | (item != item.shift(-1))
    first_in_row = row != row.shift(1)
    fragment = pl.concat_str(
        pl.when(first_in_row.fill_null(True)).then(pl.lit("")).otherwise(pl.lit(",")),
        pl.when(opens.fill_null(True)).then(pl.concat_str("name", pl.lit(":{"))).otherwise(pl.lit("")),
        "pair",
        pl.when(closes.fill_null(True)).then(pl.lit("}")).otherwise(pl.lit("")),
    )
    values = (
        held.select("row", fragment=fragment)
        .group_by("row", maintain_order=True)
        .agg(body=pl.col("fragment").str.join(""))
    )
    at_change = changes.with_row_index("row").select(pl.col("row").cast(values.schema["row"]), key, "day")
    frame = at_change.join(values, on="row", how="left").select(
        key, "day", recent_items=pl.concat_str(pl.lit("{"), pl.col("body").fill_null(""), pl.lit("}"))
    )
    return _finish(frame.lazy(), RECENT_ITEMS_TABLE, key, as_of)


def item_catalogue(items: Frame) -> pl.DataFrame:
    """Static catalogue attributes, one row per item, plus the derived numbers the fits use."""
    level_ord = pl.col("level").replace_strict({lv: i for i, lv in enumerate(LEVELS)}, default=0, return_dtype=pl.Int64)
    base_intensity = pl.col("category").replace_strict(CATEGORY_INTENSITY, default=0.5, return_dtype=pl.Float64)
    frame = items.lazy().select(
        "item_id",
        pl.lit(FEATURE_EPOCH, dtype=UTC_TS).alias(TIMESTAMP),
        item_type=pl.col("item_type"),
        item_category=pl.col("category"),
        item_level=pl.col("level"),
        item_goal=pl.col("goal").fill_null(""),
        item_equipment=pl.col("equipment").list.sort().list.join(","),
        item_muscles=pl.col("muscles").list.sort().list.join(","),
        item_duration_min=pl.col("duration_min").cast(pl.Int64),
        item_premium=pl.col("premium").cast(pl.Int64),
        item_is_plan=(pl.col("item_type") == "plan").cast(pl.Int64),
        item_level_ord=level_ord,
        # Harder levels push a category's intensity up, within [0, 1].
        item_intensity=(base_intensity + 0.15 * (level_ord - 1)).clip(0.0, 1.0),
    )
    return frame.unique("item_id", keep="last", maintain_order=True).sort("item_id").collect()


def build_tables(events: Frame, items: Frame, *, as_of: datetime) -> dict[str, pl.DataFrame]:
    """Every feature table, keyed by table name (the names of `features.schema.TABLES`)."""
    events = events.lazy().collect() if isinstance(events, pl.LazyFrame) else events
    items = items.lazy().collect() if isinstance(items, pl.LazyFrame) else items
    return {
        "user_profile": user_profile(events, as_of=as_of),
        "user_workout_stats": user_workout_stats(events, items, as_of=as_of),
        "user_health": user_health(events, as_of=as_of),
        "user_engagement": user_engagement(events, items, as_of=as_of),
        "item_stats": item_stats(events, as_of=as_of),
        "item_catalogue": item_catalogue(items),
        RECENT_ITEMS_TABLE: user_recent_items(events, as_of=as_of),
    }


def latest_rows(table: pl.DataFrame, key: str) -> pl.DataFrame:
    """The newest row per entity (what an online store holds)."""
    return table.sort(key, TIMESTAMP).group_by(key, maintain_order=True).last()


__all__ = [
    "EVENT_SCHEMA",
    "ITEM_SCHEMA",
    "build_tables",
    "events_frame",
    "item_catalogue",
    "item_stats",
    "items_frame",
    "latest_rows",
    "user_engagement",
    "user_health",
    "user_profile",
    "user_recent_items",
    "user_workout_stats",
]
