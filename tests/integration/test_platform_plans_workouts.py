"""Plans and workouts on SQLite and PostgreSQL: browse with filters and cursors, enroll (event + email),
start → log sets → complete (summary, events), streaks and achievements, ownership."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
import test_platform_support as support
from fastapi.testclient import TestClient
from test_platform_support import error_code, event_count, events_of, mailbox, make_account

from platform_api.plans.exercises import exercises_by_id
from platform_api.plans.service import ALWAYS_AVAILABLE
from platform_api.runtime import Platform
from platform_api.workouts import service as workouts
from platform_api.workouts.calories import MET
from platform_api.workouts.schemas import SetIn, WorkoutCreate
from platform_api.workouts.tables import WorkoutSession

# Fixtures shared by the platform tests.
client = support.client
platform = support.platform


def test_browse_plans_with_filters_and_cursor(platform: Platform, client: TestClient) -> None:
    user = make_account(platform)
    everything = client.get("/v1/plans", params={"limit": 100}, headers=user.headers).json()
    assert everything["count"] == 72 and len(everything["data"]) == 72 and everything["next_cursor"] is None

    # Walk a filtered listing page by page: every match exactly once, in one stable order.
    params = {"level": "beginner", "equipment": ["dumbbell"], "limit": 4}
    seen: list[str] = []
    cursor = None
    while True:
        page = client.get(
            "/v1/plans", params={**params, **({"cursor": cursor} if cursor else {})}, headers=user.headers
        )
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [p["id"] for p in body["data"]]
        for plan in body["data"]:
            assert plan["level"] == "beginner"
            assert set(plan["equipment"]) <= {"dumbbell"} | ALWAYS_AVAILABLE
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == body["count"]
    expected = [
        p["id"]
        for p in everything["data"]
        if p["level"] == "beginner" and set(p["equipment"]) <= {"dumbbell"} | ALWAYS_AVAILABLE
    ]
    assert seen == sorted(expected) and 0 < len(seen) < 72

    goal = client.get("/v1/plans", params={"goal": "mobility"}, headers=user.headers).json()
    assert goal["count"] > 0 and {p["goal"] for p in goal["data"]} == {"mobility"}
    assert (
        error_code(client.get("/v1/plans", params={"cursor": "not-a-cursor!"}, headers=user.headers))
        == "invalid_cursor"
    )
    assert client.get("/v1/plans", params={"level": "guru"}, headers=user.headers).status_code == 422
    assert client.get("/v1/plans").status_code == 401


def test_trainer_profile_and_plan(platform: Platform, client: TestClient) -> None:
    trainer, user = make_account(platform, role="trainer"), make_account(platform)
    body = {
        "title": "Desk strength",
        "goal": "build_strength",
        "level": "beginner",
        "exercise_ids": ["Pushups", "Bodyweight_Squat"],
        "weeks": 6,
        "sessions_per_week": 3,
        "minutes_per_session": 30,
    }
    assert error_code(client.post("/v1/plans", json=body, headers=trainer.headers)) == "no_trainer_profile"
    assert client.post("/v1/plans", json=body, headers=user.headers).status_code == 403
    profile = client.put(
        "/v1/trainers/me", json={"display_name": "Alex", "specialties": ["strength"]}, headers=trainer.headers
    )
    assert profile.status_code == 200
    created = client.post("/v1/plans", json=body, headers=trainer.headers)
    assert created.status_code == 201, created.text
    plan = created.json()
    assert plan["trainer_id"] == trainer.id and plan["category"] == "strength"
    assert (
        client.post("/v1/plans", json={**body, "exercise_ids": ["No_Such"]}, headers=trainer.headers).status_code == 422
    )
    trainers = client.get("/v1/trainers", headers=user.headers).json()
    assert trainers["count"] == 1 and trainers["data"][0]["plans"] == 1
    mine = client.get("/v1/plans", params={"trainer_id": trainer.id}, headers=user.headers).json()
    assert [p["id"] for p in mine["data"]] == [plan["id"]]


def test_enroll_workout_summary_events(platform: Platform, client: TestClient) -> None:
    user = make_account(platform)
    plan_id = "plan-build-strength-beginner-bodyweight"
    enrolled = client.post(
        f"/v1/plans/{plan_id}/enrollments",
        json={"source": "recommendation", "request_id": "req-1"},
        headers=user.headers,
    )
    assert enrolled.status_code == 201, enrolled.text
    again = client.post(f"/v1/plans/{plan_id}/enrollments", headers=user.headers)
    assert again.status_code == 200 and again.json()["id"] == enrolled.json()["id"]
    [event] = events_of(platform, "plan.enrolled", user_id=user.id)
    assert event.item_id == plan_id and event.properties["source"] == "recommendation"
    [mail] = mailbox(platform, user.email)  # the outbox relay ran after the response
    assert "enrolled" in mail.subject

    started_at = datetime.now(UTC) - timedelta(minutes=40)
    started = client.post(
        "/v1/workouts", json={"plan_id": plan_id, "started_at": started_at.isoformat()}, headers=user.headers
    )
    assert started.status_code == 201, started.text
    workout_id = started.json()["id"]
    log1 = client.post(
        f"/v1/workouts/{workout_id}/sets",
        headers=user.headers,
        json={"exercise_id": "Pushups", "sets": [{"reps": 12, "rpe": 7}, {"reps": 10, "rpe": 8}]},
    )
    log2 = client.post(
        f"/v1/workouts/{workout_id}/sets",
        headers=user.headers,
        json={"exercise_id": "Plank", "sets": [{"duration_s": 60, "rpe": 6}]},
    )
    assert log1.status_code == log2.status_code == 201, log1.text
    assert [s["position"] for s in log1.json()["data"] + log2.json()["data"]] == [0, 1, 2]

    done = client.post(f"/v1/workouts/{workout_id}/complete", headers=user.headers)
    assert done.status_code == 200, done.text
    summary = done.json()
    w = summary["workout"]
    assert w["status"] == "completed" and w["total_sets"] == 3 and w["total_reps"] == 22
    assert 39.9 <= w["duration_min"] <= 41
    assert w["avg_rpe"] == 7.0 and 0 <= w["score"] <= 100
    # Calories by hand: Pushups and Plank are both "strength"; mean RPE 7 makes it vigorous (MET 6.0), 70 kg.
    assert {exercises_by_id()[e].category for e in ("Pushups", "Plank")} == {"strength"}
    assert w["calories"] == pytest.approx(MET["strength_vigorous"] * 70 * w["duration_min"] / 60, abs=0.2)
    assert summary["streak_days"] == 1
    assert [a["code"] for a in summary["new_achievements"]] == ["first_workout"]

    # Every step left its event, with the summary's numbers.
    assert len(events_of(platform, "workout.started", user_id=user.id)) == 1
    logged = events_of(platform, "exercise.logged", user_id=user.id)
    assert sorted((e.properties["exercise_id"], e.properties["sets"], e.properties["reps"]) for e in logged) == [
        ("Plank", 1, 0),
        ("Pushups", 2, 22),
    ]
    [completed] = events_of(platform, "workout.completed", user_id=user.id)
    assert completed.item_id == plan_id
    assert completed.properties["total_sets"] == 3 and completed.properties["calories"] == w["calories"]

    # Completing again returns the same summary and writes nothing; logging more is refused.
    before = event_count(platform)
    replay = client.post(f"/v1/workouts/{workout_id}/complete", headers=user.headers).json()
    assert replay["workout"] == w and replay["new_achievements"] == []
    assert event_count(platform) == before
    late = client.post(
        f"/v1/workouts/{workout_id}/sets", headers=user.headers, json={"exercise_id": "Pushups", "sets": [{"reps": 5}]}
    )
    assert late.status_code == 409 and error_code(late) == "workout_completed"


def test_workout_bad_input(platform: Platform, client: TestClient) -> None:
    user = make_account(platform)
    w = client.post("/v1/workouts", json={}, headers=user.headers).json()
    assert w["source"] == "free" and w["plan_id"] is None
    url = f"/v1/workouts/{w['id']}/sets"
    assert (
        error_code(client.post(url, json={"exercise_id": "Nope", "sets": [{"reps": 1}]}, headers=user.headers))
        == "unknown_exercise"
    )
    assert (
        client.post(url, json={"exercise_id": "Pushups", "sets": [{"reps": 0}]}, headers=user.headers).status_code
        == 422
    )
    assert (
        client.post(
            url, json={"exercise_id": "Pushups", "sets": [{"reps": 5, "rpe": 11}]}, headers=user.headers
        ).status_code
        == 422
    )
    future = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    assert client.post("/v1/workouts", json={"started_at": future}, headers=user.headers).status_code == 422
    assert client.post("/v1/workouts", json={"plan_id": "plan-nope"}, headers=user.headers).status_code == 404


def test_streaks_and_achievements(platform: Platform) -> None:
    user = make_account(platform)
    day0 = datetime(2026, 3, 1, 7, 0, tzinfo=UTC)
    summaries = []
    with platform.sessions() as session:
        for i in range(10):
            # Days 0-6 in a row, then a gap, then days 8, 9 and 10.
            at = day0 + timedelta(days=i if i < 7 else i + 1)
            w, _ = workouts.start_workout(session, user_id=user.id, body=WorkoutCreate(), now=at)
            workouts.log_sets(session, workout=w, exercise_id="Pushups", sets=[SetIn(reps=10)], now=at)
            summaries.append(workouts.complete_workout(session, workout=w, now=at + timedelta(minutes=30)))
    new = [[a.code for a in s.new_achievements] for s in summaries]
    assert new[0] == ["first_workout"] and new[2] == ["streak_3"] and new[6] == ["streak_7"]
    assert [s.streak_days for s in summaries] == [1, 2, 3, 4, 5, 6, 7, 1, 2, 3]
    assert new[9] == ["workouts_10"]
    assert sum(len(n) for n in new) == 4  # nothing is awarded twice


def test_premium_plan_needs_entitlement(platform: Platform, client: TestClient) -> None:
    user = make_account(platform)
    premium = client.get("/v1/plans", params={"premium": True}, headers=user.headers).json()["data"][0]["id"]
    refused = client.post(f"/v1/plans/{premium}/enrollments", headers=user.headers)
    assert refused.status_code == 403 and error_code(refused) == "entitlement_required"
    assert client.post("/v1/workouts", json={"plan_id": premium}, headers=user.headers).status_code == 403
    assert client.post("/v1/entitlements/trial", headers=user.headers).status_code == 201
    assert client.post(f"/v1/plans/{premium}/enrollments", headers=user.headers).status_code == 201


@pytest.mark.security
def test_ownership_of_enrollments_and_workouts(platform: Platform, client: TestClient) -> None:
    owner, other, admin = make_account(platform), make_account(platform), make_account(platform, role="admin")
    enrollment = client.post("/v1/plans/plan-mobility-beginner-bodyweight/enrollments", headers=owner.headers).json()
    workout = client.post("/v1/workouts", json={}, headers=owner.headers).json()
    for method, url, body in [
        ("get", f"/v1/enrollments/{enrollment['id']}", None),
        ("delete", f"/v1/enrollments/{enrollment['id']}", None),
        ("get", f"/v1/workouts/{workout['id']}", None),
        ("get", f"/v1/workouts/{workout['id']}/sets", None),
        ("post", f"/v1/workouts/{workout['id']}/sets", {"exercise_id": "Pushups", "sets": [{"reps": 1}]}),
        ("post", f"/v1/workouts/{workout['id']}/complete", None),
    ]:
        response = client.request(method, url, json=body, headers=other.headers)
        assert response.status_code == 404 and error_code(response) == "not_found", (method, url)
    assert client.get("/v1/enrollments", headers=other.headers).json()["count"] == 0
    assert client.get("/v1/workouts", headers=other.headers).json()["count"] == 0
    assert client.get(f"/v1/workouts/{workout['id']}", headers=admin.headers).status_code == 200
    with platform.sessions() as session:
        assert session.get(WorkoutSession, workout["id"]).status == "active"  # type: ignore[union-attr]
    cancelled = client.delete(f"/v1/enrollments/{enrollment['id']}", headers=owner.headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


def test_retried_start_and_log_are_not_duplicated(platform: Platform, client: TestClient) -> None:
    user, other = make_account(platform), make_account(platform)
    workout_id, log_id = str(uuid4()), str(uuid4())
    first = client.post("/v1/workouts", json={"id": workout_id}, headers=user.headers)
    retry = client.post("/v1/workouts", json={"id": workout_id}, headers=user.headers)
    assert (first.status_code, retry.status_code) == (201, 200) and retry.json()["id"] == workout_id
    assert error_code(client.post("/v1/workouts", json={"id": workout_id}, headers=other.headers)) == "id_taken"
    body = {"log_id": log_id, "exercise_id": "Pushups", "sets": [{"reps": 10}, {"reps": 8}]}
    logged = client.post(f"/v1/workouts/{workout_id}/sets", json=body, headers=user.headers).json()
    again = client.post(f"/v1/workouts/{workout_id}/sets", json=body, headers=user.headers).json()
    assert again == logged and logged["count"] == 2
    assert len(events_of(platform, "workout.started", user_id=user.id)) == 1
    assert len(events_of(platform, "exercise.logged", user_id=user.id)) == 1
    summary = client.post(f"/v1/workouts/{workout_id}/complete", headers=user.headers).json()
    assert summary["workout"]["total_sets"] == 2 and summary["workout"]["total_reps"] == 18
