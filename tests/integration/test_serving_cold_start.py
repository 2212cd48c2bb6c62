"""Cold start over HTTP on the real ranking path: people who just signed up are recommended from their onboarding
answers at once, different answers give different lists that obey each user's rules, and a profile change
changes the list within seconds. One app for the module; helpers and rule checks from test_serving_rules."""

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from support import TrainedStack
from test_serving_rules import PUSH_DEADLINE_S, Env, Person, needs, rule_breaks, running

from features.schema import GOAL_CATEGORIES

PASSWORD = "cold start correct horse"


@pytest.fixture(scope="module")
def env(served_stack: TrainedStack) -> Iterator[Env]:
    with running(served_stack) as found:
        yield found


def sign_up(env: Env, **profile: Any) -> tuple[Person, float]:
    """Sign up and sign in over HTTP as the app does; the person and the seconds from sign-up until their
    profile was in the online store."""
    email = f"cold-{uuid.uuid4().hex[:10]}@example.com"
    started = time.monotonic()
    accepted = env.client.post("/v1/auth/signup", json={"email": email, "password": PASSWORD, **profile})
    assert accepted.status_code == 202, accepted.text
    tokens = env.client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert tokens.status_code == 200, tokens.text
    headers = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
    me = env.client.get("/v1/users/me", headers=headers).json()
    assert (me["goal"], me["fitness_level"], me["equipment"]) == (
        profile["goal"],
        profile["fitness_level"],
        profile["equipment"],
    )
    person = Person(
        user_id=me["id"],
        goal=me["goal"],
        level=me["fitness_level"],
        equipment=tuple(me["equipment"]),
        session_minutes=me["session_minutes"],
        headers=headers,
    )
    env.wait_profile(person)
    return person, time.monotonic() - started


def own_slate(env: Env, person: Person, k: int = 10) -> list[dict[str, Any]]:
    """The user's own top-k, asked with their own token."""
    answer = env.client.get(f"/v1/users/{person.user_id}/recommendations", params={"k": k}, headers=person.headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["fallback_reason"] is None and body["user_id"] == person.user_id
    data: list[dict[str, Any]] = body["data"]
    return data


def goal_share(env: Env, data: list[dict[str, Any]], goal: str) -> int:
    return sum(env.by_id[d["item_id"]].category in GOAL_CATEGORIES[goal] for d in data)


def test_new_users_are_recommended_from_their_onboarding_answers_at_once(env: Env) -> None:
    """A mobility beginner without equipment and a strength intermediate with a barbell, just signed up."""
    mover, online_a = sign_up(env, goal="mobility", fitness_level="beginner", equipment=[], session_minutes=20)
    lifter, online_b = sign_up(
        env, goal="build_strength", fitness_level="intermediate", equipment=["barbell"], session_minutes=45
    )
    print(f"profiles online {online_a:.1f} s and {online_b:.1f} s after sign-up")
    lists = {}
    for person in (mover, lifter):
        data = own_slate(env, person)
        assert not rule_breaks(env, person, data, k=10), rule_breaks(env, person, data, k=10)
        assert goal_share(env, data, person.goal or "") >= 3  # of their goal's categories, as many as the cap allows
        lists[person.user_id] = data
    a, b = lists[mover.user_id], lists[lifter.user_id]
    items_a, items_b = [env.by_id[d["item_id"]] for d in a], [env.by_id[d["item_id"]] for d in b]
    assert all(not needs(i) for i in items_a) and all(i.level != "expert" for i in items_a)
    assert any("barbell" in needs(i) for i in items_b)  # what only the lifter may do
    assert Counter(i.category for i in items_a) != Counter(i.category for i in items_b)
    assert goal_share(env, b, "build_strength") > goal_share(env, a, "build_strength")
    overlap = len({i.item_id for i in items_a} & {i.item_id for i in items_b})
    print(f"the two new users' top-10 share {overlap} items")
    assert overlap < 10


def test_a_profile_change_changes_the_list_within_seconds(env: Env) -> None:
    person, _ = sign_up(env, goal="mobility", fitness_level="beginner", equipment=[], session_minutes=20)
    before = own_slate(env, person)
    assert not any(needs(env.by_id[d["item_id"]]) for d in before)
    change = {"goal": "build_strength", "fitness_level": "intermediate", "equipment": ["barbell", "dumbbell"]}
    started = time.monotonic()
    patched = env.client.patch("/v1/users/me", json=change, headers=person.headers)
    assert patched.status_code == 200 and patched.json()["equipment"] == ["barbell", "dumbbell"], patched.text
    changed = Person(
        user_id=person.user_id,
        goal="build_strength",
        level="intermediate",
        equipment=("barbell", "dumbbell"),
        session_minutes=20,
        headers=person.headers,
    )
    while True:  # the cached slate must go, and the new one follow the new answers
        after = own_slate(env, changed)
        if any(needs(env.by_id[d["item_id"]]) for d in after):
            break
        assert time.monotonic() - started < PUSH_DEADLINE_S, "the profile change did not reach the slate"
        time.sleep(0.2)
    print(f"the list followed the profile change {time.monotonic() - started:.1f} s after it")
    assert not rule_breaks(env, changed, after, k=10)
    assert [d["item_id"] for d in after] != [d["item_id"] for d in before]

    # The new goal is served. (Not "a larger share than before": the trained model decides that, and with
    # the cap of 3 a category the share can stay level; it did on some days' simulated data.)
    assert goal_share(env, after, "build_strength") >= 1
