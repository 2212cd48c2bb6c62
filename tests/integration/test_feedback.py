"""Feedback and the served log over HTTP (real uvicorn, the trained embedded stack): each action stored as its
event once, forged or foreign request ids and unserved items refused, dismiss invalidating the cached slates,
and every served slate reaching the event log as impressions without a command, once across restarts."""

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from support import TrainedStack, running_worker, serve_app

from platform_api.auth.api_keys import create_api_key
from platform_api.auth.service import create_user
from platform_api.catalogue.service import list_items
from platform_api.events.tables import EventLog
from platform_api.runtime import Platform, open_platform
from serving.app import create_app
from serving.config import ServingSettings
from serving.feedback import feedback_id
from serving.ranking.impressions import impression_id
from serving.ranking.request_ids import RequestIds

URL = "/v1/recommendations/feedback"
# Users of these tests' own (not the stack's simulated u-…): their feedback is not pushed online here, and the
# rule tests check the simulated users' slates against the event log.
LOAD_S = 0.5


def settings_of(stack: TrainedStack, **overrides: Any) -> ServingSettings:
    values: dict[str, Any] = {"model_refresh_s": 0}
    return ServingSettings(FITREC_DATA_DIR=stack.data_dir, **values | overrides)


@pytest.fixture(scope="module")
def platform(served_stack: TrainedStack) -> Iterator[Platform]:
    platform = open_platform(settings_of(served_stack).platform())
    yield platform
    platform.close()


@pytest.fixture(scope="module")
def keys(served_stack: TrainedStack, platform: Platform) -> dict[str, dict[str, str]]:
    with platform.sessions() as session:
        _, backend = create_api_key(
            session, name="feedback backend", scopes=["recommendations:read", "feedback:write"], created_by=None
        )
    return {"read": {"X-API-Key": served_stack.api_key}, "backend": {"X-API-Key": backend}}


@pytest.fixture(scope="module")
def worker(served_stack: TrainedStack) -> Iterator[Any]:
    """The worker beside the app: it loads the served slates into impressions (no pushes: not these tests')."""
    with running_worker(served_stack.data_dir, push_interval_s=0, served_load_s=LOAD_S) as running:
        yield running


@pytest.fixture(scope="module")
def base(served_stack: TrainedStack, worker: Any) -> Iterator[str]:
    with serve_app(create_app(settings_of(served_stack))) as url:
        yield url


def recommend(base: str, user_id: str, headers: dict[str, str]) -> dict[str, Any]:
    answer = httpx.get(f"{base}/v1/users/{user_id}/recommendations", params={"k": 10}, headers=headers, timeout=30)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["count"] == 10, body
    return body


def feedback(base: str, headers: dict[str, str], **body: Any) -> httpx.Response:
    return httpx.post(f"{base}{URL}", json=body, headers=headers, timeout=30)


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    err: dict[str, Any] = response.json()["error"]
    assert err["status"] == status and err["code"] and err["message"]
    return err


def event(platform: Platform, event_id: str) -> EventLog | None:
    with platform.sessions() as session:
        return session.get(EventLog, event_id)


def poll(check: Callable[[], bool], *, within_s: float = 20.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "not within the deadline"
        time.sleep(0.2)


def impressions_of(platform: Platform, request_id: str) -> list[EventLog]:
    """The request's impressions, by the primary keys the loader derives from (request_id, position)."""
    ids = [impression_id(request_id, p) for p in range(10)]
    with platform.sessions() as session:
        return list(session.scalars(select(EventLog).where(EventLog.event_id.in_(ids))))


def stored_since(platform: Platform, started: datetime, event_type: str, user_id: str) -> int:
    """Events of the user stored since `started` (the simulated history has clicks and impressions too)."""
    with platform.sessions() as session:
        count = session.scalar(
            select(func.count())
            .select_from(EventLog)
            .where(EventLog.event_type == event_type, EventLog.user_id == user_id, EventLog.received_at >= started)
        )
    return int(count or 0)


@pytest.fixture(scope="module")
def catalogue(platform: Platform) -> list[str]:
    with platform.sessions() as session:
        return [item.item_id for item in list_items(session)]


def test_each_action_is_stored_as_its_event(base, keys, platform) -> None:  # type: ignore[no-untyped-def]
    slate = recommend(base, "fb-user-1", keys["read"])
    rid, items = slate["request_id"], [d["item_id"] for d in slate["data"]]
    expected = {
        "click": ("recommendation.clicked", None),
        "dismiss": ("recommendation.dismissed", None),
        "enroll": ("recommendation.converted", "enroll"),
        "start": ("recommendation.converted", "start"),
        "complete": ("recommendation.converted", "complete"),
    }
    for position, (action, (event_type, converted)) in enumerate(expected.items()):
        sent = feedback(
            base, keys["backend"], request_id=rid, item_id=items[position], action=action, user_id="fb-user-1"
        )
        assert sent.status_code == 201, sent.text
        body = sent.json()
        assert (body["event_type"], body["position"], body["duplicate"]) == (event_type, position, False)
        stored = event(platform, body["event_id"])
        assert stored is not None and stored.event_type == event_type
        assert (stored.user_id, stored.item_id) == ("fb-user-1", items[position])
        assert stored.properties["request_id"] == rid and stored.properties["position"] == position
        assert stored.properties["model_version"] == slate["model_version"] and stored.properties["surface"] == "home"
        assert stored.properties["arm"]
        assert stored.properties.get("action") == converted


def test_a_retry_is_stored_once(base, keys, platform) -> None:  # type: ignore[no-untyped-def]
    started = datetime.now(UTC)
    slate = recommend(base, "fb-user-2", keys["read"])
    body = {"request_id": slate["request_id"], "item_id": slate["data"][2]["item_id"], "action": "click"}
    first = feedback(base, keys["backend"], **body, user_id="fb-user-2", occurred_at="2026-01-01T10:00:00Z")
    again = feedback(base, keys["backend"], **body, user_id="fb-user-2", occurred_at="2026-01-01T10:00:05Z")
    assert first.status_code == 201 and again.status_code == 200, again.text
    assert again.json()["duplicate"] is True and again.json()["event_id"] == first.json()["event_id"]
    assert again.json()["occurred_at"].startswith("2026-01-01T10:00:00")  # the stored one
    assert first.json()["event_id"] == feedback_id(**body)
    assert stored_since(platform, started, "recommendation.clicked", "fb-user-2") == 1


def test_forged_foreign_or_unknown_requests_and_unserved_items_are_refused(base, keys, catalogue) -> None:  # type: ignore[no-untyped-def]
    mine = recommend(base, "fb-user-3", keys["read"])
    theirs = recommend(base, "fb-user-4", keys["read"])
    rid, item = mine["request_id"], mine["data"][0]["item_id"]

    def send(headers: dict[str, str] = keys["backend"], **changes: Any) -> httpx.Response:
        body = {"request_id": rid, "item_id": item, "action": "click", "user_id": "fb-user-3"} | changes
        return feedback(base, headers, **body)

    forged = rid[:-1] + ("0" if rid[-1] != "0" else "1")
    other_secret = RequestIds(b"not the app's secret" * 2).new("fb-user-3")
    for bad in (forged, other_secret, uuid.uuid4().hex, theirs["request_id"]):
        assert "request not found" in error(send(request_id=bad), 404)["message"]
    assert error(send(item_id="no-such-item"), 404)["message"] == "item not found"
    unserved = next(i for i in catalogue if i not in {d["item_id"] for d in mine["data"]})
    assert "item_id" in error(send(item_id=unserved), 422)["message"]
    assert error(send(action="like"), 422)["code"] == "validation_error"
    assert error(send(occurred_at="2999-01-01T00:00:00Z"), 422)["message"].startswith("occurred_at")
    assert error(send(headers={}), 401)["code"] == "unauthorized"
    assert error(send(headers=keys["read"]), 403)["code"] == "insufficient_scope"
    assert send().status_code == 201  # the same feedback, well formed and authorised


def test_users_send_their_own_feedback_with_their_token(base, keys, platform) -> None:  # type: ignore[no-untyped-def]
    email = f"fb-{uuid.uuid4().hex[:8]}@example.com"
    with platform.sessions() as session:
        user = create_user(session, email=email, password="correct horse battery", role="user")
        user_id = user.id
    login = httpx.post(f"{base}/v1/auth/login", json={"email": email, "password": "correct horse battery"})
    assert login.status_code == 200, login.text
    token = {"Authorization": f"Bearer {login.json()['access_token']}"}
    answer = httpx.get(f"{base}/v1/users/{user_id}/recommendations", headers=token, timeout=30).json()
    body = {"request_id": answer["request_id"], "item_id": answer["data"][0]["item_id"], "action": "start"}
    assert feedback(base, token, **body, user_id=user_id).status_code == 201
    other = recommend(base, "fb-user-5", keys["read"])
    body = {"request_id": other["request_id"], "item_id": other["data"][0]["item_id"], "action": "click"}
    assert error(feedback(base, token, **body, user_id="fb-user-5"), 404)["message"] == "user not found"


def test_dismiss_invalidates_the_cached_slates_and_click_does_not(base, keys) -> None:  # type: ignore[no-untyped-def]
    first = recommend(base, "fb-user-6", keys["read"])
    assert recommend(base, "fb-user-6", keys["read"])["cached"] is True
    body = {"request_id": first["request_id"], "item_id": first["data"][0]["item_id"], "user_id": "fb-user-6"}
    assert feedback(base, keys["backend"], **body, action="click").status_code == 201
    assert recommend(base, "fb-user-6", keys["read"])["cached"] is True
    assert feedback(base, keys["backend"], **body, action="dismiss").status_code == 201
    assert recommend(base, "fb-user-6", keys["read"])["cached"] is False


def test_served_slates_reach_the_event_log_within_seconds_without_a_command(base, keys, platform) -> None:  # type: ignore[no-untyped-def]
    fresh = recommend(base, "fb-user-7", keys["read"])
    cached = recommend(base, "fb-user-7", keys["read"])
    assert (fresh["cached"], cached["cached"]) == (False, True)
    started = time.monotonic()
    poll(lambda: all(len(impressions_of(platform, a["request_id"])) == 10 for a in (fresh, cached)))
    print(f"impressions in the event log {time.monotonic() - started:.1f}s after serving")
    for answer in (fresh, cached):
        rows = sorted(impressions_of(platform, answer["request_id"]), key=lambda r: r.properties["position"])
        assert [r.item_id for r in rows] == [d["item_id"] for d in answer["data"]]
        assert all(r.user_id == "fb-user-7" for r in rows)
        props = rows[0].properties
        assert props["cached"] is answer["cached"] and props["model_version"] == answer["model_version"]
        assert props["arm"] == answer.get("arm", "champion") and props["surface"] == "home"
        assert [r.properties["position"] for r in rows] == list(range(10))


def test_feedback_on_another_replica_checks_the_slate_from_the_event_log(  # type: ignore[no-untyped-def]
    served_stack, base, keys, platform, catalogue
) -> None:
    with serve_app(create_app(settings_of(served_stack))) as replica:
        slate = recommend(replica, "u-00108", keys["read"])
    poll(lambda: len(impressions_of(platform, slate["request_id"])) == 10)
    unserved = next(i for i in catalogue if i not in {d["item_id"] for d in slate["data"]})
    body = {"request_id": slate["request_id"], "user_id": "u-00108", "action": "click"}
    assert "item_id" in error(feedback(base, keys["backend"], **body, item_id=unserved), 422)["message"]
    sent = feedback(base, keys["backend"], **body, item_id=slate["data"][4]["item_id"])
    assert sent.status_code == 201 and sent.json()["position"] == 4


def test_slates_of_a_restarted_api_are_loaded_once(served_stack, keys, platform, worker) -> None:  # type: ignore[no-untyped-def]
    started = datetime.now(UTC)
    answers = []
    for _ in range(2):  # the same data folder, stopped and started again
        with serve_app(create_app(settings_of(served_stack))) as url:
            answers.append(recommend(url, "u-00110", keys["read"]))
    for answer in answers:  # each app's last flush at shutdown wrote its slates; the worker loads them
        poll(lambda answer=answer: len(impressions_of(platform, answer["request_id"])) == 10)
    assert worker.loader.totals.duplicates == 0, worker.loader.totals
    assert stored_since(platform, started, "recommendation.impression", "u-00110") == 20
