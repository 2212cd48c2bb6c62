"""Every expectation family catches its kind of bad row; good rows go on; the conservation law holds.

GE costs about a quarter of a second per suite run, so the bad rows of all families
are validated in one batch (module fixture) and each family asserts on its rows.
"""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from pipelines.validation import ConservationError, SuiteError, events_frame, validate_events
from pipelines.validation import runner as runner_module

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
USERS = {"u1", "u2"}
ITEMS = {"plan-1", "ex-1"}

PROPS: dict[str, dict[str, Any]] = {
    "user.created": {
        "goal": "endurance",
        "fitness_level": "beginner",
        "equipment": ["dumbbell"],
        "session_minutes": 40,
    },
    "user.email_verified": {},
    "plan.enrolled": {"source": "recommendation", "request_id": "req-1"},
    "workout.started": {"session_id": "s1", "source": "plan"},
    "exercise.logged": {"session_id": "s1", "exercise_id": "ex-1", "sets": 3, "reps": 10, "weight_kg": 40, "rpe": 7},
    "workout.completed": {
        "session_id": "s1",
        "duration_min": 35.5,
        "total_sets": 9,
        "total_reps": 90,
        "calories": 250,
        "rpe": 7.5,
    },
    "health_metric.synced": {
        "day": "2025-02-28",
        "steps": 8000,
        "active_minutes": 45,
        "resting_hr": 58,
        "sleep_minutes": 420,
        "weight_kg": 72,
    },
    "content.viewed": {"seconds": 120, "source": "browse"},
    "content.ready": {"kind": "video"},
    "recommendation.impression": {"request_id": "req-1", "position": 3, "model_version": "7", "score": 0.4},
    "recommendation.clicked": {"request_id": "req-1", "position": 3},
    "recommendation.dismissed": {"request_id": "req-1", "position": 4},
    "payment.completed": {"payment_id": "p1", "amount_cents": 999, "currency": "EUR", "gateway": "stripe"},
    "payment.failed": {
        "payment_id": "p2",
        "amount_cents": 999,
        "currency": "EUR",
        "gateway": "stripe",
        "reason": "card",
    },
    "subscription.activated": {"subscription_id": "sub1", "plan_code": "monthly", "renews_at": "2025-04-01T00:00:00Z"},
}
ITEM_OF = {
    "plan.enrolled": "plan-1",
    "content.viewed": "ex-1",
    "content.ready": "ex-1",
    "recommendation.impression": "plan-1",
    "recommendation.clicked": "plan-1",
    "recommendation.dismissed": "plan-1",
    "workout.started": "plan-1",
}


def event(kind: str, /, *, drop: tuple[str, ...] = (), **changes: Any) -> dict[str, Any]:
    """A valid event of type `kind`; `changes` override envelope fields or (prefixed p_) properties."""
    ev: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "event_type": kind,
        "user_id": None if kind == "content.ready" else "u1",
        "item_id": ITEM_OF.get(kind),
        "occurred_at": (NOW - timedelta(hours=2)).isoformat(),
        "properties": dict(PROPS[kind]) if kind in PROPS else {},
    }
    for key, value in changes.items():
        if key.startswith("p_"):
            ev["properties"][key[2:]] = value
        else:
            ev[key] = value
    for key in drop:
        ev["properties"].pop(key, None) if key in ev["properties"] else ev.pop(key, None)
    return ev


# family → [(bad event, expected expectation name)]
BAD: dict[str, list[tuple[dict[str, Any], str]]] = {
    "required": [
        (event("workout.completed", drop=("duration_min",)), "duration_min.required"),
        (event("exercise.logged", drop=("session_id",)), "session_id.required"),
        (event("workout.completed", user_id=None), "user_id.required"),
        (event("content.viewed", item_id=None), "item_id.required"),
        (event("workout.started", drop=("occurred_at",)), "occurred_at.required"),
        (event("workout.started", event_id=None), "event_id.required"),
        (event("workout.started", event_type=None), "event_type.required"),
    ],
    "type": [
        (event("health_metric.synced", p_steps="many"), "steps.type"),
        (event("exercise.logged", p_sets=2.5), "sets.type"),
        (event("workout.completed", p_calories=[1, 2]), "calories.type"),
        (event("health_metric.synced", p_day="28/02/2025"), "day.type"),
        (event("user.created", p_equipment="dumbbell"), "equipment.type"),
        (event("subscription.activated", p_renews_at="next month"), "renews_at.type"),
        (event("workout.started", event_id="not-a-uuid"), "event_id.type"),
        (event("workout.started", occurred_at="yesterday"), "occurred_at.type"),
        (event("workout.started", occurred_at="2025-03-01T10:00:00"), "occurred_at.type"),  # no timezone
        (event("workout.started", properties="{not json"), "properties.type"),
    ],
    "range_heart_rate": [(event("health_metric.synced", p_resting_hr=300), "resting_hr.range")],
    "range_steps": [(event("health_metric.synced", p_steps=-5), "steps.range")],
    "range_durations": [
        (event("workout.completed", p_duration_min=0), "duration_min.range"),
        (event("exercise.logged", p_duration_s=5 * 3600), "duration_s.range"),
        (event("health_metric.synced", p_sleep_minutes=2000), "sleep_minutes.range"),
    ],
    "range_weights": [
        (event("exercise.logged", p_weight_kg=900), "weight_kg.range"),
        (event("health_metric.synced", p_weight_kg=5), "weight_kg.range"),
    ],
    "range_positions": [(event("recommendation.impression", p_position=-1), "position.range")],
    "range_rpe": [(event("workout.completed", p_rpe=11), "rpe.range")],
    "range_calories": [(event("workout.completed", p_calories=6000), "calories.range")],
    "length": [(event("payment.completed", p_currency="EURO"), "currency.length")],
    "enum": [
        (event("workout.exploded"), "event_type.enum"),
        (event("user.created", p_goal="get_rich"), "goal.enum"),
        (event("user.created", p_fitness_level="god"), "fitness_level.enum"),
        (event("content.viewed", p_source="tv"), "source.enum"),
        (event("content.ready", p_kind="podcast"), "kind.enum"),
    ],
    "future": [
        (event("workout.completed", occurred_at=(NOW + timedelta(hours=1)).isoformat()), "occurred_at.future"),
        (event("health_metric.synced", p_day="2025-03-05"), "day.future"),
    ],
    "too_old": [
        (event("workout.completed", occurred_at=(NOW - timedelta(days=25 * 365)).isoformat()), "occurred_at.too_old"),
        (event("health_metric.synced", p_day="2001-01-01"), "day.too_old"),
    ],
    "unknown_user": [(event("workout.completed", user_id="ghost"), "user_id.known")],
    "unknown_item": [
        (event("content.viewed", item_id="no-such-item"), "item_id.known"),
        (event("recommendation.clicked", item_id="no-such-item"), "item_id.known"),
    ],
}
# Every type once, valid; plus a user introduced by a valid user.created in the same batch.
GOOD = [event(t) for t in PROPS] + [
    event("user.created", user_id="newbie"),
    event("workout.completed", user_id="newbie"),
    event("exercise.logged", drop=("reps", "weight_kg", "rpe")),  # optional properties take their defaults
    event("workout.completed", occurred_at=(NOW + timedelta(minutes=5)).isoformat()),  # within clock skew
    event("health_metric.synced", p_day="2025-03-02"),  # a local "today" ahead of UTC
]
# A user.created that fails introduces nobody: that user's other events are unknown-user rows.
REJECTED_SIGNUP = [
    event("user.created", user_id="badnewbie", p_goal="?"),
    event("workout.started", user_id="badnewbie"),
]


@pytest.fixture(scope="module")
def outcome() -> Any:
    bad = [ev for cases in BAD.values() for ev, _ in cases]
    return validate_events(events_frame(GOOD + bad + REJECTED_SIGNUP), known_users=USERS, known_items=ITEMS, now=NOW)


def _reasons(outcome: Any, event_id: str | None, event_type: str | None = None) -> list[str]:
    q = outcome.quarantined
    rows = q.filter(pl.col("event_id") == event_id) if event_id else q.filter(pl.col("event_id").is_null())
    if event_type is not None or event_id is None:
        rows = rows.filter(pl.col("event_type").eq_missing(event_type))
    assert rows.height == 1, f"expected one quarantined row for {event_id}"
    return rows["reasons"][0].to_list()


def test_good_rows_of_every_type_go_on(outcome: Any) -> None:
    assert set(outcome.valid["event_id"].to_list()) == {ev["event_id"] for ev in GOOD}
    assert set(outcome.by_type) >= set(PROPS)
    assert outcome.report["stored"] == len(GOOD)


@pytest.mark.parametrize("family", list(BAD))
def test_each_family_quarantines_its_bad_rows(outcome: Any, family: str) -> None:
    for ev, name in BAD[family]:
        event_id = ev.get("event_id")
        reasons = _reasons(outcome, event_id, ev.get("event_type") if event_id is None else None)
        assert name in reasons, f"{family}: {ev} quarantined for {reasons}, not {name}"
        raw = outcome.quarantined.filter(pl.col("reasons").list.contains(name))["raw"].to_list()
        assert any((event_id or "null") in r for r in raw)


def test_a_user_is_known_only_through_a_valid_user_created(outcome: Any) -> None:
    signup, workout = REJECTED_SIGNUP
    assert _reasons(outcome, signup["event_id"]) == ["goal.enum"]
    assert _reasons(outcome, workout["event_id"]) == ["user_id.known"]
    assert GOOD[-4]["event_id"] in outcome.valid["event_id"].to_list()  # newbie's workout


def test_only_the_failing_expectation_is_named(outcome: Any) -> None:
    ev, _ = BAD["range_rpe"][0]
    assert _reasons(outcome, ev["event_id"]) == ["rpe.range"]
    report = {c["name"]: c for c in outcome.report["checks"] if c["suite"] == "workout.completed"}
    assert report["rpe.range"]["expectation"] == "expect_column_values_to_be_between"
    assert report["rpe.range"]["unexpected"] == 1


def test_valid_rows_are_typed_with_contract_defaults(outcome: Any) -> None:
    logged = outcome.by_type["exercise.logged"]
    defaults = logged.filter(pl.col("event_id") == GOOD[-3]["event_id"]).row(0, named=True)
    assert (defaults["reps"], defaults["weight_kg"], defaults["rpe"]) == (0, 0.0, None)
    assert logged.schema["sets"] == pl.Int64 and logged.schema["weight_kg"] == pl.Float64
    health = outcome.by_type["health_metric.synced"]
    assert health.schema["day"] == pl.Date and health.schema["occurred_at"] == pl.Datetime("us", "UTC")
    created = outcome.by_type["user.created"].filter(pl.col("user_id") == "u1").row(0, named=True)
    assert created["equipment"] == ["dumbbell"] and created["region"] == "US"
    assert not any(c.startswith("__") or c.endswith(("__unparsed", "__unknown")) for c in logged.columns)


def test_conservation_with_good_bad_and_duplicate_events() -> None:
    good = [event("workout.completed") for _ in range(5)]
    bad = [event("workout.completed", p_rpe=42), event("workout.completed", user_id="ghost")]
    repeats = [dict(good[0]), dict(good[0]), dict(bad[0])]  # in-batch repeats, of a good and of a bad event
    exported_before = event("workout.completed")
    batch = good + bad + repeats + [exported_before]
    out = validate_events(
        events_frame(batch), known_users=USERS, known_items=ITEMS, now=NOW, seen_ids={exported_before["event_id"]}
    )
    assert (out.report["received"], out.report["stored"], out.report["quarantined"], out.duplicates) == (11, 5, 2, 4)
    assert out.received == out.report["stored"] + out.report["quarantined"] + out.duplicates
    assert out.quarantined["event_id"].n_unique() == 2  # the repeat of a bad event is not quarantined twice


def test_ids_differing_only_in_case_are_duplicates() -> None:
    ev = event("workout.completed")
    shouting = dict(ev, event_id=ev["event_id"].upper())
    out = validate_events(events_frame([ev, shouting]), known_users=USERS, known_items=ITEMS, now=NOW)
    assert (out.report["stored"], out.duplicates) == (1, 1)


def test_a_lost_row_fails_the_run_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    def losing(flat: pl.DataFrame, event_type: str) -> pl.DataFrame:
        return runner_module_with_defaults(flat, event_type).head(-1)

    runner_module_with_defaults = runner_module.with_defaults
    monkeypatch.setattr(runner_module, "with_defaults", losing)
    with pytest.raises(ConservationError, match="received 3"):
        validate_events(
            events_frame([event("workout.completed") for _ in range(3)]), known_users=USERS, known_items=ITEMS, now=NOW
        )


def test_an_expectation_that_cannot_run_fails_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    original = runner_module._ge_frame
    monkeypatch.setattr(
        runner_module, "_ge_frame", lambda flat, suite: original(flat, suite).drop(columns=["rpe"], errors="ignore")
    )
    with pytest.raises(SuiteError, match="rpe"):
        validate_events(events_frame([event("workout.completed")]), known_users=USERS, known_items=ITEMS, now=NOW)


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        validate_events(
            events_frame([event("workout.completed")]),
            known_users=USERS,
            known_items=ITEMS,
            now=NOW.replace(tzinfo=None),
        )
