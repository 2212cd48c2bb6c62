"""The population simulator: determinism, the event contract, and a choice model a ranker can learn."""

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from platform_api.catalogue.service import Item, catalogue_items
from platform_api.events.schemas import EventIn, HealthMetricSynced
from training.simulator import Simulation, simulate

# Not a midnight: the simulator walks calendar days inside an arbitrary window.
END = datetime(2026, 3, 15, 13, 37, 21, tzinfo=UTC)


@pytest.fixture(scope="module")
def items() -> list[Item]:
    return catalogue_items()


@pytest.fixture(scope="module")
def sim(items: list[Item]) -> Simulation:
    return simulate(items, users=250, days=40, seed=11, end=END)


@pytest.fixture(scope="module")
def events(sim: Simulation) -> list[dict]:
    return sim.events


def of_type(events: list[dict], event_type: str) -> list[dict]:
    return [e for e in events if e["event_type"] == event_type]


def ts(event: dict) -> datetime:
    return datetime.fromisoformat(event["occurred_at"])


def shown(events: list[dict]) -> tuple[list[dict], set[tuple[str, int]]]:
    """Impressions, and the (request_id, position) pairs that were clicked."""
    clicks = {
        (e["properties"]["request_id"], e["properties"]["position"]) for e in of_type(events, "recommendation.clicked")
    }
    return of_type(events, "recommendation.impression"), clicks


def test_same_inputs_give_identical_events_and_another_seed_different_ones(items: list[Item], sim: Simulation) -> None:
    again = simulate(items, users=250, days=40, seed=11, end=END)
    assert again.events == sim.events
    other = simulate(items, users=250, days=40, seed=12, end=END)
    assert {e["event_id"] for e in other.events}.isdisjoint(e["event_id"] for e in sim.events)
    assert [e["user_id"] for e in other.events[:200]] != [e["user_id"] for e in sim.events[:200]]


def test_a_bigger_population_with_the_same_seed_shares_no_event_id(items: list[Item], sim: Simulation) -> None:
    # Event ids hash every input: re-running with more users must not collide with the first run.
    bigger = simulate(items, users=260, days=40, seed=11, end=END)
    assert {e["event_id"] for e in bigger.events}.isdisjoint(e["event_id"] for e in sim.events)


def test_every_event_is_accepted_by_the_event_contract(events: list[dict]) -> None:
    ids = [str(EventIn.model_validate(e).event_id) for e in events]
    assert len(set(ids)) == len(ids)
    kinds = {e["event_type"] for e in events}
    assert kinds >= {
        "user.created",
        "user.email_verified",
        "recommendation.impression",
        "recommendation.clicked",
        "recommendation.dismissed",
        "plan.enrolled",
        "content.viewed",
        "workout.started",
        "exercise.logged",
        "workout.completed",
        "health_metric.synced",
        "payment.completed",
        "subscription.activated",
    }


def test_events_are_sorted_and_inside_the_window(sim: Simulation, events: list[dict]) -> None:
    times = [ts(e) for e in events]
    assert times == sorted(times)
    assert times[0] >= END - timedelta(days=40)
    assert times[-1] < END
    assert sim.start == END - timedelta(days=40) and sim.end == END


def test_each_user_starts_with_user_created_and_mostly_verifies(sim: Simulation, events: list[dict]) -> None:
    first: dict[str, str] = {}
    for e in events:
        first.setdefault(e["user_id"], e["event_type"])
    assert set(first) == {u.user_id for u in sim.users}
    assert set(first.values()) == {"user.created"}
    created = {e["user_id"]: e["properties"] for e in of_type(events, "user.created")}
    user = sim.users[0]
    assert created[user.user_id]["goal"] == user.goal
    assert created[user.user_id]["equipment"] == list(user.equipment)
    assert {"body only", "none"} <= set(user.equipment)
    verified = len(of_type(events, "user.email_verified"))
    assert 0.7 * len(sim.users) < verified < len(sim.users)


def test_impressions_form_slates_of_ten_with_positions_0_to_9(events: list[dict]) -> None:
    impressions, _ = shown(events)
    slates: dict[str, list[dict]] = defaultdict(list)
    for e in impressions:
        slates[e["properties"]["request_id"]].append(e)
    assert len(slates) > 500
    for slate in slates.values():
        assert sorted(e["properties"]["position"] for e in slate) == list(range(10))
        assert len({e["item_id"] for e in slate}) == 10
        assert len({e["user_id"] for e in slate}) == 1
        assert {e["properties"]["model_version"] for e in slate} == {"sim-logging-policy"}
    shown_pairs = {(e["properties"]["request_id"], e["properties"]["position"], e["item_id"]) for e in impressions}
    for kind in ("recommendation.clicked", "recommendation.dismissed"):
        acted = of_type(events, kind)
        assert acted
        assert all(
            (e["properties"]["request_id"], e["properties"]["position"], e["item_id"]) in shown_pairs for e in acted
        )


def test_click_rate_decays_with_position(events: list[dict]) -> None:
    impressions, clicks = shown(events)
    n, c = np.zeros(10), np.zeros(10)
    for e in impressions:
        p = e["properties"]
        n[p["position"]] += 1
        c[p["position"]] += (p["request_id"], p["position"]) in clicks
    ctr = c / n
    assert ctr[0] > 2 * ctr[9]
    assert ctr[:3].mean() > ctr[3:6].mean() > ctr[6:].mean()


def test_users_click_items_of_higher_utility(sim: Simulation, events: list[dict]) -> None:
    impressions, clicks = shown(events)
    by_request: dict[str, list[dict]] = defaultdict(list)
    for e in impressions:
        by_request[e["properties"]["request_id"]].append(e)
    clicked: list[float] = []
    skipped: list[float] = []
    feasible_n = np.zeros(2)
    feasible_c = np.zeros(2)
    for request_id, slate in by_request.items():
        user = slate[0]["user_id"]
        item_ids = [e["item_id"] for e in slate]
        u = sim.utility(user, item_ids)
        ok = sim.feasible(user, item_ids)
        for e, value, fits in zip(slate, u, ok, strict=True):
            hit = (request_id, e["properties"]["position"]) in clicks
            (clicked if hit else skipped).append(value)
            feasible_n[int(fits)] += 1
            feasible_c[int(fits)] += hit
    assert np.mean(clicked) > np.mean(skipped) + 1.0
    ctr_infeasible, ctr_feasible = feasible_c / feasible_n
    assert ctr_infeasible < 0.2 * ctr_feasible


def test_oracle_beats_popularity_which_beats_random_on_later_slates(sim: Simulation, events: list[dict]) -> None:
    # Popularity carries some signal (item quality, equipment most people own), personal utility much more.
    impressions, clicks = shown(events)
    by_request: dict[str, list[dict]] = defaultdict(list)
    for e in impressions:
        by_request[e["properties"]["request_id"]].append(e)
    slates = list(by_request.values())  # in time order
    cut = int(0.7 * len(slates))
    seen: dict[str, int] = defaultdict(int)
    hits: dict[str, int] = defaultdict(int)
    for slate in slates[:cut]:
        for e in slate:
            seen[e["item_id"]] += 1
            hits[e["item_id"]] += (e["properties"]["request_id"], e["properties"]["position"]) in clicks
    discount = 1 / np.log2(np.arange(2, 12))
    rng = np.random.default_rng(0)
    ndcg: dict[str, list[float]] = defaultdict(list)
    for slate in slates[cut:]:
        rel = np.array([(e["properties"]["request_id"], e["properties"]["position"]) in clicks for e in slate], float)
        if not rel.any():
            continue
        ideal = (np.sort(rel)[::-1] * discount).sum()
        scores = {
            "oracle": sim.utility(slate[0]["user_id"], [e["item_id"] for e in slate]),
            "popularity": np.array([(hits[e["item_id"]] + 0.05) / (seen[e["item_id"]] + 1) for e in slate]),
            "random": rng.random(len(slate)),
        }
        for name, score in scores.items():
            ndcg[name].append((rel[np.argsort(-score, kind="stable")] * discount).sum() / ideal)
    mean = {name: float(np.mean(v)) for name, v in ndcg.items()}
    assert len(ndcg["oracle"]) > 200
    assert mean["oracle"] > mean["popularity"] + 0.07
    assert mean["popularity"] > mean["random"] + 0.03


def test_enrolled_users_train_from_their_plan_on_later_days(events: list[dict]) -> None:
    enrolled = of_type(events, "plan.enrolled")
    assert enrolled
    assert all(e["item_id"].startswith("plan-") and e["properties"]["source"] == "recommendation" for e in enrolled)
    clicks = {
        (e["user_id"], e["item_id"], e["properties"]["request_id"]) for e in of_type(events, "recommendation.clicked")
    }
    assert all((e["user_id"], e["item_id"], e["properties"]["request_id"]) in clicks for e in enrolled)
    first_enrollment: dict[tuple[str, str], dict] = {}
    for e in enrolled:
        first_enrollment.setdefault((e["user_id"], e["item_id"]), e)
    plan_starts = [e for e in of_type(events, "workout.started") if e["properties"]["source"] == "plan"]
    assert len(plan_starts) > 50
    for start in plan_starts:
        joined = first_enrollment[(start["user_id"], start["item_id"])]
        assert ts(start).date() > ts(joined).date()
    # The first session after an enrollment is credited to the recommendation request that led to it.
    credited = [
        e
        for e in of_type(events, "workout.started")
        if e["item_id"].startswith("plan-") and e["properties"]["source"] == "recommendation"
    ]
    enrolled_requests = {(e["user_id"], e["item_id"], e["properties"]["request_id"]) for e in enrolled}
    assert credited
    assert all((e["user_id"], e["item_id"], e["properties"]["request_id"]) in enrolled_requests for e in credited)


def test_workout_sessions_are_consistent_and_completion_follows_utility(sim: Simulation, events: list[dict]) -> None:
    started = {e["properties"]["session_id"]: e for e in of_type(events, "workout.started")}
    completed = {e["properties"]["session_id"]: e for e in of_type(events, "workout.completed")}
    logged: dict[str, list[dict]] = defaultdict(list)
    for e in of_type(events, "exercise.logged"):
        logged[e["properties"]["session_id"]].append(e)
    assert set(completed) < set(started)  # some sessions are abandoned
    assert set(logged) <= set(started)
    for sid, done in completed.items():
        begin = started[sid]
        assert (done["user_id"], done["item_id"]) == (begin["user_id"], begin["item_id"])
        assert ts(begin) < ts(done)
        sets = [x["properties"]["sets"] for x in logged[sid]]
        assert done["properties"]["total_sets"] == sum(sets) > 0
        assert done["properties"]["total_reps"] == sum(
            x["properties"]["sets"] * x["properties"]["reps"] for x in logged[sid]
        )
        assert 0 < done["properties"]["calories"] < 2500
        assert all(ts(begin) < ts(x) < ts(done) for x in logged[sid])
    free = [e for e in started.values() if not e["item_id"].startswith("plan-")]
    assert free and all(e["properties"]["source"] == "recommendation" and e["properties"]["request_id"] for e in free)
    for x in of_type(events, "exercise.logged")[:2000]:
        p = x["properties"]
        assert p["reps"] > 0 or p["duration_s"] > 0
        assert 1 <= p["rpe"] <= 10 and 0 <= p["weight_kg"] <= 250

    def u(e: dict) -> float:
        return float(sim.utility(e["user_id"], [e["item_id"]])[0])

    done_u = [u(e) for sid, e in started.items() if sid in completed]
    dropped_u = [u(e) for sid, e in started.items() if sid not in completed]
    assert np.mean(done_u) > np.mean(dropped_u) + 0.3


def test_health_metrics_stay_in_range_and_steps_rise_on_workout_days(sim: Simulation, events: list[dict]) -> None:
    health = of_type(events, "health_metric.synced")
    per_user_day = {(e["user_id"], e["properties"]["day"]) for e in health}
    assert len(per_user_day) == len(health)  # one sync per user and day
    fields = HealthMetricSynced.model_fields
    for e in health:
        p = e["properties"]
        assert date.fromisoformat(p["day"]) == ts(e).date()
        for name in ("steps", "active_minutes", "resting_hr", "sleep_minutes", "weight_kg"):
            value = p[name]
            if value is None:
                assert name == "weight_kg"
                continue
            bounds = {type(m).__name__: m for m in fields[name].metadata}
            assert bounds["Ge"].ge <= value <= bounds["Le"].le
        assert 38 <= p["resting_hr"] <= 120 and 180 <= p["sleep_minutes"] <= 720
    workout_days = {(e["user_id"], ts(e).date().isoformat()) for e in of_type(events, "workout.started")}
    on = [e["properties"]["steps"] for e in health if (e["user_id"], e["properties"]["day"]) in workout_days]
    off = [e["properties"]["steps"] for e in health if (e["user_id"], e["properties"]["day"]) not in workout_days]
    assert len(on) > 100
    assert np.mean(on) > np.mean(off) + 1500


def test_resting_heart_rate_drifts_down_with_completed_workouts(sim: Simulation, events: list[dict]) -> None:
    completed: dict[str, int] = defaultdict(int)
    for e in of_type(events, "workout.completed"):
        completed[e["user_id"]] += 1
    hr: dict[str, list[float]] = defaultdict(list)
    for e in of_type(events, "health_metric.synced"):
        hr[e["user_id"]].append(e["properties"]["resting_hr"])

    def drift(users: list[str]) -> float:
        return float(np.mean([np.mean(hr[x][-7:]) - np.mean(hr[x][:7]) for x in users]))

    trained = [x for x in hr if completed[x] >= 10 and len(hr[x]) >= 30]
    idle = [x for x in hr if completed[x] == 0 and len(hr[x]) >= 30]
    assert len(trained) >= 10 and len(idle) >= 10
    assert drift(trained) < drift(idle) - 0.4


def test_iter_batches_yields_the_same_events_in_order(items: list[Item]) -> None:
    small = simulate(items, users=30, days=5, seed=3, end=END)
    batches = list(small.iter_batches(size=700))
    assert all(len(b) == 700 for b in batches[:-1]) and 0 < len(batches[-1]) <= 700
    assert [e for b in batches for e in b] == small.events
    assert len(small) == len(small.events) == sum(small.counts().values())


def test_utility_is_the_exposed_ground_truth(sim: Simulation, items: list[Item]) -> None:
    user = next(u for u in sim.users if u.equipment == ("body only", "none"))
    item_ids = [it.item_id for it in items]
    u = sim.utility(user.user_id, item_ids)
    assert u.shape == (len(items),) and np.isfinite(u).all()
    assert np.array_equal(u, sim.utility(user.user_id, item_ids))
    needs_gear = [i for i, it in enumerate(items) if set(it.equipment) - {"body only", "none"}]
    no_gear = [i for i, it in enumerate(items) if not set(it.equipment) - {"body only", "none"}]
    assert u[needs_gear].mean() < u[no_gear].mean() - 2
    assert not sim.feasible(user.user_id, [item_ids[needs_gear[0]]])[0]
    # Personal terms outweigh item quality: users' top-10s differ.
    tops = {tuple(np.argsort(-sim.utility(x.user_id, item_ids))[:10]) for x in sim.users[:20]}
    assert len(tops) > 10
    with pytest.raises(KeyError):
        sim.utility("u-99999", item_ids[:1])


def test_short_windows_and_bad_arguments(items: list[Item]) -> None:
    tiny = simulate(items, users=20, days=1, seed=5, end=END)
    assert {e["event_type"] for e in tiny.events} >= {"user.created", "recommendation.impression"}
    assert all(END - timedelta(days=1) <= ts(e) < END for e in tiny.events)
    with pytest.raises(ValueError):
        simulate(items, users=5, days=1, seed=1, end=datetime(2026, 1, 1))  # naive
    with pytest.raises(ValueError):
        simulate(items, users=5, days=0, seed=1, end=END)


# --- health-aware choices -----------------------------------------------------------------------------------------


def test_recovery_is_exposed_and_shows_in_the_previous_evenings_health_sync(
    sim: Simulation, events: list[dict]
) -> None:
    """Recovery of day d comes from what day d-1's sync showed: short sleep and a raised resting HR mean low."""
    by_user: dict[str, list[dict]] = defaultdict(list)
    for e in of_type(events, "health_metric.synced"):
        by_user[e["user_id"]].append(e)
    sleep_dev, hr_dev, recovery = [], [], []
    for user_id, syncs in by_user.items():
        if len(syncs) < 20:
            continue
        sleep = np.array([s["properties"]["sleep_minutes"] for s in syncs], float)
        hr = np.array([s["properties"]["resting_hr"] for s in syncs], float)
        for s, slept, rested in zip(syncs[:-1], sleep - sleep.mean(), hr - hr.mean(), strict=False):
            next_day = ts(s) + timedelta(hours=12)
            sleep_dev.append(slept)
            hr_dev.append(rested)
            recovery.append(sim.recovery(user_id, next_day))
    r = np.array(recovery)
    assert r.min() >= 0 and r.max() <= 1 and r.std() > 0.15
    assert np.corrcoef(sleep_dev, r)[0, 1] > 0.4
    assert np.corrcoef(hr_dev, r)[0, 1] < -0.5
    with pytest.raises(ValueError):
        sim.recovery(sim.users[0].user_id, datetime(2026, 3, 1))  # naive


def test_poorly_recovered_users_click_hard_sessions_less(sim: Simulation, events: list[dict]) -> None:
    impressions, clicks = shown(events)
    intensity = dict(zip((i := sorted({e["item_id"] for e in impressions})), sim.intensity(i), strict=True))
    counts = np.zeros((3, 2, 2))  # [recovery low / middle / high, hard item?, clicked?]
    for e in impressions:
        band = int(np.digitize(sim.recovery(e["user_id"], ts(e)), [0.4, 0.75]))
        hard = intensity[e["item_id"]] > 0.6
        counts[band, int(hard), int((e["properties"]["request_id"], e["properties"]["position"]) in clicks)] += 1
    ctr = counts[:, :, 1] / counts.sum(axis=2)
    (tired_light, tired_hard), _, (fresh_light, fresh_hard) = ctr
    assert tired_hard < 0.5 * fresh_hard
    assert tired_light > 0.8 * fresh_light  # light sessions keep their appeal


def test_the_oracle_of_a_logged_slate_uses_that_days_recovery(sim: Simulation, items: list[Item]) -> None:
    impressions, _ = shown(sim.events)
    by_request: dict[str, list[dict]] = defaultdict(list)
    for e in impressions:
        by_request[e["properties"]["request_id"]].append(e)
    checked = 0
    for slate in list(by_request.values())[::50]:
        user, item_ids = slate[0]["user_id"], [e["item_id"] for e in slate]
        on_the_day = sim.utility(user, item_ids, at=ts(slate[0]))
        np.testing.assert_allclose(sim.utility(user, item_ids), on_the_day)
        np.testing.assert_allclose(sim.utility(user, item_ids[::-1]), on_the_day[::-1])
        checked += 1
    assert checked > 20
    # The same user's preference for everything changes with the day's recovery: lighter when low.
    item_ids = [it.item_id for it in items]
    intensity = sim.intensity(item_ids)
    gaps = []
    for user in sim.users[:40]:
        days = [sim.start + timedelta(days=d, hours=12) for d in range(40)]
        rec = np.array([sim.recovery(user.user_id, d) for d in days])
        low, high = days[int(rec.argmin())], days[int(rec.argmax())]
        top = {at: np.argsort(-sim.utility(user.user_id, item_ids, at=at))[:10] for at in (low, high)}
        gaps.append(intensity[top[high]].mean() - intensity[top[low]].mean())
    assert np.mean(gaps) > 0.05 and np.mean(np.array(gaps) >= 0) > 0.9
