"""The polars feature transforms and the on-demand fits, on hand-made frames."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import polars as pl
import pytest

from features.on_demand import ranking_fit
from features.schema import (
    CATEGORIES,
    FEATURE_EPOCH,
    FIT_FEATURES,
    HISTORY_DAYS,
    LEVELS,
    RECENT_ITEMS_REF,
    RECENT_ITEMS_TABLE,
    TABLES,
    TIMESTAMP,
    parse_recent_items,
)
from features.services import RANKING_FEATURES, RANKING_SERVICE, RANKING_VIEW_FEATURES
from features.transforms import build_tables, events_frame, items_frame, latest_rows

T0 = datetime(2025, 3, 1, 8, tzinfo=UTC)
AS_OF = T0 + timedelta(days=4, hours=3)  # 2025-03-05 11:00


def day(n: float, hours: float = 0) -> datetime:
    return T0 + timedelta(days=n, hours=hours)


def ev(event_type: str, user_id: str | None, item_id: str | None, at: datetime, **props: object) -> dict:
    return {
        "event_id": uuid.uuid4(),
        "event_type": event_type,
        "user_id": user_id,
        "item_id": item_id,
        "occurred_at": at,
        "properties": props,
    }


def workout(user_id: str, item_id: str, at: datetime, minutes: float = 30, rpe: float | None = 6, **kw: object) -> dict:
    return ev(
        "workout.completed",
        user_id,
        item_id,
        at,
        session_id="s",
        duration_min=minutes,
        total_sets=1,
        total_reps=1,
        calories=1,
        rpe=rpe,
        **kw,
    )


ITEMS = items_frame(
    [
        {
            "item_id": "str-beg",
            "item_type": "exercise_guide",
            "title": "a",
            "category": "strength",
            "level": "beginner",
            "goal": None,
            "equipment": ("dumbbell",),
            "muscles": ("biceps",),
            "duration_min": 10,
            "premium": False,
        },
        {
            "item_id": "cardio-plan",
            "item_type": "plan",
            "title": "b",
            "category": "cardio",
            "level": "expert",
            "goal": "endurance",
            "equipment": ("body only",),
            "muscles": (),
            "duration_min": 30,
            "premium": True,
        },
        {
            "item_id": "stretch-int",
            "item_type": "video",
            "title": "c",
            "category": "stretching",
            "level": "intermediate",
            "goal": None,
            "equipment": ("foam roll", "bands"),
            "muscles": ("calves",),
            "duration_min": 20,
            "premium": False,
        },
    ]
)


def tables(events: list[dict], as_of: datetime = AS_OF) -> dict[str, pl.DataFrame]:
    return build_tables(events_frame(events), ITEMS, as_of=as_of)


def rows_of(frame: pl.DataFrame, key: str, value: str) -> list[dict]:
    return frame.filter(pl.col(key) == value).to_dicts()


def at(frame: pl.DataFrame, key: str, value: str, stamp: datetime) -> dict:
    match = frame.filter((pl.col(key) == value) & (pl.col(TIMESTAMP) == stamp)).to_dicts()
    assert len(match) == 1, f"no single row at {stamp}: {frame}"
    return match[0]


def midnight(n: int) -> datetime:
    """End of the day `n` days after T0's day."""
    return datetime(2025, 3, 1, tzinfo=UTC) + timedelta(days=n + 1)


def test_every_table_has_its_columns_in_order() -> None:
    out = tables([ev("user.created", "u1", None, day(0), goal="mobility", fitness_level="beginner")])
    for name, (entity, cols) in TABLES.items():
        key = "user_id" if entity == "user" else "item_id"
        assert out[name].columns == [key, TIMESTAMP, *cols], name


def test_windowed_rows_are_daily_and_stamped_at_the_end_of_their_day() -> None:
    out = tables([workout("u1", "str-beg", day(1)), workout("u1", "str-beg", day(2), minutes=20, rpe=8)])
    stats = out["user_workout_stats"]
    stamps = [r[TIMESTAMP] for r in rows_of(stats, "user_id", "u1")]
    # Empty first row, finished days 1..3 at midnight after them, today's row at as_of.
    assert stamps == [FEATURE_EPOCH, midnight(1), midnight(2), midnight(3), AS_OF]
    first = at(stats, "user_id", "u1", midnight(1))
    assert (first["workouts_7d"], first["minutes_7d"], first["avg_rpe_28d"]) == (1, 30.0, 6.0)
    second = at(stats, "user_id", "u1", midnight(2))
    assert (second["workouts_7d"], second["minutes_28d"], second["avg_rpe_28d"]) == (2, 50.0, 7.0)
    epoch = at(stats, "user_id", "u1", FEATURE_EPOCH)
    assert epoch["workouts_7d"] is None and epoch["mix_strength"] is None


def test_events_after_as_of_are_ignored() -> None:
    base = tables([workout("u1", "str-beg", day(1))])
    later = tables([workout("u1", "str-beg", day(1)), workout("u1", "str-beg", AS_OF + timedelta(seconds=1))])
    for name in TABLES:
        assert base[name].equals(later[name]), name


def test_a_row_only_sees_events_before_its_stamp() -> None:
    # A workout late on day 2 cannot appear in the row stamped at the end of day 1, nor before.
    out = tables([workout("u1", "str-beg", day(1)), workout("u1", "str-beg", day(2, 15))])
    stats = out["user_workout_stats"]
    assert at(stats, "user_id", "u1", midnight(1))["workouts_28d"] == 1
    assert at(stats, "user_id", "u1", midnight(2))["workouts_28d"] == 2


def test_seven_day_window_slides_and_rows_stop_after_the_history_horizon() -> None:
    as_of = day(HISTORY_DAYS + 20)
    out = tables([workout("u1", "str-beg", day(0))], as_of=as_of)
    stats = out["user_workout_stats"]
    assert at(stats, "user_id", "u1", midnight(6))["workouts_7d"] == 1
    assert at(stats, "user_id", "u1", midnight(7))["workouts_7d"] == 0
    assert at(stats, "user_id", "u1", midnight(7))["workouts_28d"] == 1
    assert at(stats, "user_id", "u1", midnight(28))["workouts_28d"] == 0
    last = latest_rows(stats, "user_id").to_dicts()[0]
    # The last row is HISTORY_DAYS after the workout, all windows empty, recency capped.
    assert last[TIMESTAMP] == midnight(HISTORY_DAYS)
    assert last["workouts_28d"] == 0 and last["days_since_last_workout"] == HISTORY_DAYS


def test_streak_and_days_since_last_workout() -> None:
    out = tables([workout("u1", "str-beg", day(0)), workout("u1", "str-beg", day(1)), workout("u1", "str-beg", day(2))])
    stats = out["user_workout_stats"]
    assert at(stats, "user_id", "u1", midnight(2))["streak_days"] == 3
    assert at(stats, "user_id", "u1", midnight(2))["days_since_last_workout"] == 0
    # A rest day keeps the streak alive; the second rest day ends it.
    assert at(stats, "user_id", "u1", midnight(3))["streak_days"] == 3
    assert at(stats, "user_id", "u1", midnight(3))["days_since_last_workout"] == 1
    assert at(stats, "user_id", "u1", AS_OF)["streak_days"] == 0
    assert at(stats, "user_id", "u1", AS_OF)["days_since_last_workout"] == 2


def test_category_mix_uses_the_workout_category_or_the_items() -> None:
    out = tables(
        [
            workout("u1", "str-beg", day(1)),
            workout("u1", "str-beg", day(1), category="cardio"),
            workout("u1", "cardio-plan", day(1)),
            workout("u1", "unknown", day(1)),
        ]
    )
    row = at(out["user_workout_stats"], "user_id", "u1", midnight(1))
    assert row["workouts_7d"] == 4
    assert row["mix_strength"] == 0.25 and row["mix_cardio"] == 0.5 and row["mix_stretching"] == 0.0


def test_health_averages_trend_and_recovery() -> None:
    out = tables(
        [
            ev(
                "health_metric.synced",
                "u1",
                None,
                day(0),
                day="2025-03-01",
                steps=6000,
                resting_hr=60,
                sleep_minutes=480,
            ),
            workout("u1", "str-beg", day(1, 2), minutes=60, rpe=8),
            ev("health_metric.synced", "u1", None, day(1), day="2025-03-02", steps=8000, resting_hr=70),
        ]
    )
    health = out["user_health"]
    first = at(health, "user_id", "u1", midnight(0))
    # Sleep and heart rate at the user's own level (0.5 each), no training load (1.0).
    assert first["sleep_1d"] == 480 and first["sleep_delta_1d"] == 0 and first["resting_hr_delta_1d"] == 0
    assert first["training_load_3d"] == 0 and first["recovery_score"] == pytest.approx(0.45 * 0.5 + 0.35 * 0.5 + 0.2)
    second = at(health, "user_id", "u1", midnight(1))
    assert second["steps_7d_avg"] == 7000 and second["resting_hr_7d_avg"] == 65 and second["sleep_7d_avg"] == 480
    assert second["resting_hr_trend"] == 0.0  # 7-day and 28-day averages agree
    # No sleep synced that day: the week's sleep counts (8 h: 1.0); heart rate 5 bpm above its
    # 4-week level (0.0); an hour at RPE 8 is a load of 0.8 (score 0.6).
    assert second["sleep_1d"] is None and second["resting_hr_delta_1d"] == 5.0
    assert second["training_load_3d"] == pytest.approx(0.8)
    assert second["recovery_score"] == pytest.approx(0.45 * 1.0 + 0.35 * 0.0 + 0.2 * 0.6)
    # The load leaves the 3-day window.
    assert at(health, "user_id", "u1", midnight(3))["training_load_3d"] == pytest.approx(0.8)
    assert at(health, "user_id", "u1", midnight(4) - timedelta(hours=13))["training_load_3d"] == 0
    missing = tables([ev("health_metric.synced", "u2", None, day(0), day="2025-03-01", steps=100)])["user_health"]
    assert at(missing, "user_id", "u2", midnight(0))["recovery_score"] == 0.5
    assert at(missing, "user_id", "u2", midnight(0))["sleep_7d_avg"] is None


def test_engagement_ctr_and_smoothed_affinities() -> None:
    out = tables(
        [
            ev("recommendation.impression", "u1", "str-beg", day(1), request_id="r", position=0, model_version="m"),
            ev("recommendation.impression", "u1", "cardio-plan", day(1), request_id="r", position=1, model_version="m"),
            ev("recommendation.clicked", "u1", "str-beg", day(1), request_id="r", position=0),
            workout("u1", "str-beg", day(1)),
        ]
    )
    row = at(out["user_engagement"], "user_id", "u1", midnight(1))
    assert (row["impressions_28d"], row["clicks_28d"], row["ctr_28d"]) == (2, 1, 0.5)
    k = len(CATEGORIES)
    # click (1) + completion (3) on strength; prior 2 spread evenly.
    assert row["affinity_strength"] == pytest.approx((4 + 2 / k) / (4 + 2))
    assert row["affinity_cardio"] == pytest.approx((2 / k) / 6)
    assert sum(row[f"affinity_{c.replace(' ', '_')}"] for c in CATEGORIES) == pytest.approx(1.0)
    assert sum(row[f"affinity_{lv}"] for lv in LEVELS) == pytest.approx(1.0)
    assert row["affinity_beginner"] > row["affinity_expert"]


def test_item_stats_windows_and_rates() -> None:
    out = tables(
        [
            ev("recommendation.impression", "u1", "str-beg", day(0), request_id="r", position=0, model_version="m"),
            ev("recommendation.impression", "u2", "str-beg", day(1), request_id="r", position=0, model_version="m"),
            ev("recommendation.clicked", "u2", "str-beg", day(1), request_id="r", position=0),
            ev("workout.started", "u2", "str-beg", day(1), session_id="s"),
            workout("u2", "str-beg", day(1)),
            ev("content.ready", None, "str-beg", day(1), kind="exercise_guide"),
        ]
    )
    row = at(out["item_stats"], "item_id", "str-beg", midnight(1))
    assert row["item_impressions_28d"] == 2 and row["item_clicks_7d"] == 1 and row["item_ctr_28d"] == 0.5
    assert row["item_enrolls_28d"] == 1 and row["item_completions_28d"] == 1
    assert row["item_completion_rate_28d"] == 1.0
    assert row["item_popularity_7d"] == 3  # click, start, completion; catalogue events do not count


def test_user_profile_latest_answer_and_catalogue() -> None:
    out = tables(
        [
            ev(
                "user.created",
                "u1",
                None,
                day(0),
                goal="mobility",
                fitness_level="beginner",
                equipment=["bands", "dumbbell"],
            ),
            ev("user.created", "u1", None, day(1), goal="endurance", fitness_level="expert", session_minutes=45),
        ]
    )
    profile = rows_of(out["user_profile"], "user_id", "u1")
    assert [r[TIMESTAMP] for r in profile] == [FEATURE_EPOCH, day(0), day(1)]
    assert profile[1]["equipment"] == "bands,dumbbell" and profile[1]["session_minutes"] == 30
    assert profile[2]["goal"] == "endurance" and profile[2]["equipment"] == ""
    catalogue = out["item_catalogue"]
    plan = at(catalogue, "item_id", "cardio-plan", FEATURE_EPOCH)
    assert plan["item_is_plan"] == 1 and plan["item_premium"] == 1 and plan["item_level_ord"] == 2
    assert plan["item_goal"] == "endurance" and plan["item_intensity"] == pytest.approx(0.65)
    assert at(catalogue, "item_id", "stretch-int", FEATURE_EPOCH)["item_equipment"] == "bands,foam roll"


def test_profile_updates_take_over_from_sign_up_at_their_time() -> None:
    out = tables(
        [
            ev("user.created", "u1", None, day(0), goal="mobility", fitness_level="beginner", equipment=["bands"]),
            ev("user.profile_updated", "u1", None, day(2), goal="endurance", fitness_level="beginner"),
            # The same instant as an update: the update wins, whatever the order in the log.
            ev("user.profile_updated", "u2", None, day(1), goal="build_muscle", fitness_level="expert"),
            ev("user.created", "u2", None, day(1), goal="mobility", fitness_level="beginner"),
            ev("user.profile_updated", "u3", None, AS_OF + timedelta(seconds=1), goal="endurance"),
        ]
    )
    profile = out["user_profile"]
    rows = rows_of(profile, "user_id", "u1")
    assert [(r[TIMESTAMP], r["goal"], r["equipment"]) for r in rows] == [
        (FEATURE_EPOCH, None, None),
        (day(0), "mobility", "bands"),
        (day(2), "endurance", ""),
    ]
    assert latest_rows(profile, "user_id").filter(pl.col("user_id") == "u2")["fitness_level"].item() == "expert"
    assert rows_of(profile, "user_id", "u3") == []  # after as_of


def _recent(out: dict[str, pl.DataFrame], user_id: str, stamp: datetime) -> str | None:
    """The value a point-in-time join at `stamp` gets: the newest row at or before it."""
    rows = out[RECENT_ITEMS_TABLE].filter((pl.col("user_id") == user_id) & (pl.col(TIMESTAMP) <= stamp))
    return rows.sort(TIMESTAMP)["recent_items"][-1]


def test_recent_items_hold_the_newest_time_of_each_action_per_item() -> None:
    out = tables(
        [
            ev("recommendation.clicked", "u1", "str-beg", day(0), request_id="r", position=0),
            ev("workout.started", "u1", "str-beg", day(0, 1), session_id="s"),
            workout("u1", "str-beg", day(0, 2)),
            workout("u1", "str-beg", day(1)),
            ev("plan.enrolled", "u1", "cardio-plan", day(1, 3)),
            ev("recommendation.dismissed", "u1", "stretch-int", day(2), request_id="r", position=2),
            # Neither an impression nor a workout without an item is an action on an item.
            ev("recommendation.impression", "u1", "cardio-plan", day(2), request_id="r", position=0, model_version="m"),
            workout("u1", None, day(2)),  # type: ignore[arg-type]
        ]
    )
    s = lambda t: int(t.timestamp())  # noqa: E731
    first = _recent(out, "u1", midnight(0))
    assert first == json.dumps(
        {"str-beg": {"clicked": s(day(0)), "completed": s(day(0, 2)), "started": s(day(0, 1))}},
        sort_keys=True,
        separators=(",", ":"),
    )
    value = parse_recent_items(_recent(out, "u1", midnight(2)))
    assert value == {
        "cardio-plan": {"enrolled": s(day(1, 3))},
        "str-beg": {"clicked": s(day(0)), "completed": s(day(1)), "started": s(day(0, 1))},
        "stretch-int": {"dismissed": s(day(2))},
    }
    # Compact, keys sorted: the value is its own canonical JSON.
    assert _recent(out, "u1", midnight(2)) == json.dumps(value, sort_keys=True, separators=(",", ":"))
    # Rows only on days that change it (days 0, 1 and 2 here), none at as_of (nothing changed today).
    stamps = [r[TIMESTAMP] for r in rows_of(out[RECENT_ITEMS_TABLE], "user_id", "u1")]
    assert stamps == [FEATURE_EPOCH, midnight(0), midnight(1), midnight(2)]
    assert at(out[RECENT_ITEMS_TABLE], "user_id", "u1", FEATURE_EPOCH)["recent_items"] is None
    assert parse_recent_items(None) == {} and parse_recent_items("") == {}


def test_recent_items_leave_after_the_history_window_and_never_see_the_future() -> None:
    as_of = day(HISTORY_DAYS + 5)
    out = tables(
        [
            workout("u1", "str-beg", day(0)),
            workout("u1", "cardio-plan", day(3)),
            workout("u1", "stretch-int", as_of + timedelta(seconds=1)),
        ],
        as_of=as_of,
    )
    s = lambda t: int(t.timestamp())  # noqa: E731
    # An action of day E counts through day E + HISTORY_DAYS - 1 and is gone the next day.
    last_in = parse_recent_items(_recent(out, "u1", midnight(HISTORY_DAYS - 1)))
    assert last_in == {"cardio-plan": {"completed": s(day(3))}, "str-beg": {"completed": s(day(0))}}
    assert parse_recent_items(_recent(out, "u1", midnight(HISTORY_DAYS))) == {"cardio-plan": {"completed": s(day(3))}}
    assert _recent(out, "u1", midnight(HISTORY_DAYS + 3)) == "{}"  # every action gone: an empty value, not stale
    latest = latest_rows(out[RECENT_ITEMS_TABLE], "user_id").to_dicts()[0]
    assert latest[TIMESTAMP] == midnight(HISTORY_DAYS + 3) and latest["recent_items"] == "{}"


def test_recent_items_quote_item_ids_as_json_does() -> None:
    odd = 'plan "quoted" \\ é\n'
    out = tables([workout("u1", odd, day(0)), workout("u1", "a-plan", day(0))])
    text = _recent(out, "u1", midnight(0))
    assert text is not None and list(json.loads(text)) == ["a-plan", odd]
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


def test_recent_items_stay_out_of_the_ranking_features() -> None:
    assert RECENT_ITEMS_REF == "user_recent_items:recent_items"
    assert RECENT_ITEMS_TABLE not in RANKING_VIEW_FEATURES and "recent_items" not in RANKING_FEATURES


def test_events_transform_quickly() -> None:
    import time

    # 1,499 users: coprime with the 4 event kinds, so every user gets every kind.
    # (pipelines.bench_features measures 1M simulated events.)
    n, users, items = 300_000, 1_499, ["str-beg", "cardio-plan", "stretch-int"]
    rng = pl.int_range(0, n, eager=True)
    kinds = ["workout.completed", "recommendation.impression", "recommendation.clicked", "health_metric.synced"]
    props = [
        json.dumps({"duration_min": 30, "rpe": 6}),
        json.dumps({"request_id": "r", "position": 0}),
        "{}",
        json.dumps({"steps": 5000, "resting_hr": 60, "sleep_minutes": 420}),
    ]
    events = pl.DataFrame(
        {
            "event_id": rng.cast(pl.String),
            "event_type": pl.Series(kinds)[rng % 4],
            "user_id": (rng % users).cast(pl.String),
            "item_id": pl.Series(items)[rng % 3],
            "occurred_at": pl.select(pl.lit(T0) + pl.duration(minutes=rng % 129_600)).to_series(),
            "properties": pl.Series(props)[rng % 4],
        }
    )
    start = time.perf_counter()
    out = build_tables(events, ITEMS, as_of=T0 + timedelta(days=91))
    elapsed = time.perf_counter() - start
    assert out["user_workout_stats"].height > users * 80
    # ~0.7 s on a quiet 2-core machine; the bound leaves room for a shared one.
    assert elapsed < 15, f"{elapsed:.1f}s for {n:,} events"


# --- on-demand fits ---------------------------------------------------------------------------------------------


def fit_row(**overrides: object) -> dict:
    row: dict[str, object] = {
        "fitness_level": "beginner",
        "equipment": "body only,dumbbell",
        "goal": "build_strength",
        "session_minutes": 30,
        "recovery_score": 0.8,
        **{f"affinity_{c.replace(' ', '_')}": 0.1 for c in CATEGORIES},
        **{f"affinity_{lv}": 1 / 3 for lv in LEVELS},
        **{f"mix_{c.replace(' ', '_')}": 0.0 for c in CATEGORIES},
        "item_category": "strength",
        "item_level": "beginner",
        "item_equipment": "dumbbell",
        "item_goal": "",
        "item_duration_min": 30,
        "item_intensity": 0.76,
    }
    row.update(overrides)
    return row


def fits(*rows: dict) -> pd.DataFrame:
    return ranking_fit(pd.DataFrame(list(rows)))


def test_fit_columns_and_a_perfect_match() -> None:
    out = fits(fit_row(affinity_strength=0.4, mix_strength=0.75, affinity_beginner=0.5))
    assert list(out.columns) == list(FIT_FEATURES)
    row = out.iloc[0]
    assert row["level_fit"] == 1.0 and row["equipment_fit"] == 1.0 and row["goal_fit"] == 1.0
    assert row["duration_fit"] == 1.0 and row["intensity_fit"] == pytest.approx(1.0)
    assert row["category_affinity"] == 0.4 and row["category_mix"] == 0.75 and row["level_affinity"] == 0.5


def test_level_fit_punishes_too_hard_more_than_too_easy() -> None:
    out = fits(fit_row(item_level="intermediate"), fit_row(fitness_level="intermediate"), fit_row(item_level="expert"))
    too_hard, too_easy, far_too_hard = out["level_fit"]
    assert too_easy > too_hard > far_too_hard


def test_equipment_fit_counts_what_the_user_has() -> None:
    out = fits(
        fit_row(item_equipment="barbell,dumbbell"), fit_row(item_equipment="none"), fit_row(item_equipment="barbell")
    )
    assert list(out["equipment_fit"]) == [0.5, 1.0, 0.0]


def test_intensity_fit_follows_recovery() -> None:
    hard = {"item_intensity": 0.9}
    light = {"item_intensity": 0.1}
    out = fits(
        fit_row(recovery_score=0.1, **hard),
        fit_row(recovery_score=0.1, **light),
        fit_row(recovery_score=1.0, **hard),
        fit_row(recovery_score=1.0, **light),
    )
    tired_hard, tired_light, fresh_hard, fresh_light = out["intensity_fit"]
    assert tired_light > tired_hard and fresh_hard > fresh_light
    # Strain: only a session harder than the recovery counts, whatever how light the other is.
    assert list(out["intensity_strain"]) == pytest.approx([0.8, 0.0, 0.0, 0.0])


def test_goal_fit_for_plans_and_content() -> None:
    out = fits(
        fit_row(item_goal="build_strength"),
        fit_row(item_goal="endurance"),
        fit_row(item_category="powerlifting"),
        fit_row(item_category="stretching"),
    )
    assert list(out["goal_fit"]) == [1.0, 0.0, 1.0, 0.0]


def test_missing_user_is_neutral_not_nan() -> None:
    unknown = {k: None for k in fit_row() if not k.startswith("item_")}
    out = fits(fit_row(**unknown), fit_row(item_category=None, item_level=None))
    assert not out.isna().any().any()
    row = out.iloc[0]
    assert row["level_fit"] == row["equipment_fit"] == row["goal_fit"] == row["duration_fit"] == 0.5
    assert row["category_affinity"] == pytest.approx(1 / len(CATEGORIES))
    assert out.iloc[1]["category_affinity"] == pytest.approx(1 / len(CATEGORIES))
    assert out.iloc[1]["level_fit"] == 0.5


def test_ranking_service_contract() -> None:
    assert RANKING_SERVICE == "ranking_v1"
    assert len(set(RANKING_FEATURES)) == len(RANKING_FEATURES)
    assert set(FIT_FEATURES) <= set(RANKING_FEATURES)
    owned = {c for _, cols in TABLES.values() for c in cols} | set(FIT_FEATURES)
    assert set(RANKING_FEATURES) <= owned
