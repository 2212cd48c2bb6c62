"""Issue 9's product rules over HTTP, on the real ranking path of a trained stack (no fakes).

One app for the module (real uvicorn, embedded stores, the feature pusher every 0.5 s). Each rule is checked
against facts read apart from the path: the platform's catalogue (`list_items`), the profiles and actions in
the event log, and the online store through a Feast store of the test's own. The simulated users (u-00001…)
cover many profiles; users created here (through the platform's own account service) cover the cases.
Three tests pin defects these tests found and that are fixed: reasons calling items popular with a segment
that never used them, and cached slates that outlived a drop in recovery or a new trial.
"""

import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from support import TrainedStack, running_worker, serve_app

from features.schema import CATEGORY_INTENSITY, ENGAGEMENT_WEIGHTS, GOAL_CATEGORIES, LEVELS, NO_EQUIPMENT
from platform_api.auth.schemas import Profile
from platform_api.auth.service import new_user, start_session
from platform_api.catalogue.service import Item, list_items
from platform_api.events.tables import EventLog
from platform_api.runtime import Platform
from serving.app import create_app
from serving.config import ServingSettings

LEVEL = {name: i for i, name in enumerate(LEVELS)}
WINDOW = timedelta(days=7)  # ServingSettings.recent_window_days
CAP = 3  # ServingSettings.max_per_category
GOAL_WORDS = {
    "build_strength": "strength",
    "build_muscle": "muscle gain",
    "endurance": "endurance",
    "lose_weight": "weight loss",
    "mobility": "mobility",
    "general_fitness": "general fitness",
}
PUSH_DEADLINE_S = 10.0  # "within seconds": the pusher runs every 0.5 s here


def intensity(item: Item) -> float:
    """How demanding an item is (as the feature build defines item_intensity)."""
    base = CATEGORY_INTENSITY.get(item.category, 0.5) + 0.15 * (LEVEL.get(item.level, 0) - 1)
    return min(1.0, max(0.0, base))


def needs(item: Item) -> set[str]:
    return set(item.equipment) - NO_EQUIPMENT


@dataclass(frozen=True)
class Person:
    """A user as the test knows them (profile as given; None equipment: never said)."""

    user_id: str
    goal: str | None
    level: str | None
    equipment: tuple[str, ...] | None
    session_minutes: int | None
    headers: dict[str, str] = field(default_factory=dict)  # a signed-in session (users made here)
    premium: bool = False
    unlocked: frozenset[str] = frozenset()

    def may_see(self, item: Item, done: set[str]) -> bool:
        """The product rules, restated from the issue: what this user may be recommended."""
        if LEVEL[item.level] > LEVEL.get(self.level or "", 0) + 1:
            return False
        if self.equipment is not None and not needs(item) <= set(self.equipment):
            return False
        if item.premium and not (self.premium or item.item_id in self.unlocked):
            return False
        return item.item_id not in done


@dataclass
class Env:
    client: httpx.Client  # no credentials of its own: `service` (the app backend's key) or a user's headers
    platform: Platform
    items: list[Item]
    stack: TrainedStack
    by_id: dict[str, Item] = field(init=False)
    service: dict[str, str] = field(init=False)
    _store: Any = None

    def __post_init__(self) -> None:
        self.by_id = {i.item_id: i for i in self.items}
        self.service = {"X-API-Key": self.stack.api_key}

    def refresh_items(self) -> None:
        with self.platform.sessions() as session:
            self.items = list_items(session)
        self.by_id = {i.item_id: i for i in self.items}

    # -- over HTTP ---------------------------------------------------------------------------------------------

    def recommend(self, user_id: str, *, k: int = 10, **params: Any) -> dict[str, Any]:
        answer = self.client.get(
            f"/v1/users/{user_id}/recommendations", params={"k": k, **params}, headers=self.service
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        assert body["fallback_reason"] is None, body  # the ranking path answered, not the popularity fallback
        return body

    def ids(self, user_id: str, *, k: int = 10, **params: Any) -> list[str]:
        return [d["item_id"] for d in self.recommend(user_id, k=k, **params)["data"]]

    def send_events(self, person: Person, events: Sequence[dict[str, Any]]) -> None:
        """POST /v1/events as the user (a user may send their own events)."""
        answer = self.client.post("/v1/events", json={"events": list(events)}, headers=person.headers)
        assert answer.status_code == 202, answer.text
        assert answer.json()["stored"] == len(events)

    # -- apart from the path -----------------------------------------------------------------------------------

    def member(
        self,
        *,
        goal: str,
        level: str,
        equipment: Sequence[str],
        minutes: int = 30,
        role: str = "user",
    ) -> Person:
        """A verified user with a signed-in session, made by the platform's account service (user.created)."""
        profile = Profile(goal=goal, fitness_level=level, equipment=list(equipment), session_minutes=minutes)  # type: ignore[arg-type]
        with self.platform.sessions() as session:
            user = new_user(
                session,
                email=f"h6-{uuid.uuid4().hex[:12]}@example.test",
                password_hash=None,
                profile=profile,
                verified=True,
                role=role,
            )
            pair = start_session(
                session, settings=self.platform.settings, user=user, method="password", client_address=None
            )
            session.commit()
            return Person(
                user_id=user.id,
                goal=goal,
                level=level,
                equipment=tuple(equipment),
                session_minutes=minutes,
                headers={"Authorization": f"Bearer {pair.access_token}"},
            )

    def online(self, user_id: str, *refs: str) -> dict[str, Any]:
        """The user's values in the online store, read through a Feast store of the test's own."""
        return self._read({"user_id": user_id}, refs)

    def item_online(self, item_id: str, *refs: str) -> dict[str, Any]:
        return self._read({"item_id": item_id}, refs)

    def _read(self, entity: dict[str, str], refs: Sequence[str]) -> dict[str, Any]:
        if self._store is None:
            from features.store import open_store

            self._store = open_store(data_dir=self.stack.data_dir)
        found = self._store.get_online_features(features=list(refs), entity_rows=[entity]).to_dict()
        return {ref.split(":", 1)[1]: found[ref.split(":", 1)[1]][0] for ref in refs}

    def wait_online(self, user_id: str, ready: Callable[[dict[str, Any]], bool], *refs: str) -> float:
        """Seconds until the user's online values satisfy `ready` (fails after PUSH_DEADLINE_S)."""
        started = time.monotonic()
        while True:
            values = self.online(user_id, *refs)
            if ready(values):
                return time.monotonic() - started
            assert time.monotonic() - started < PUSH_DEADLINE_S, f"not pushed in {PUSH_DEADLINE_S} s: {values}"
            time.sleep(0.1)

    def wait_profile(self, person: Person) -> float:
        return self.wait_online(
            person.user_id, lambda v: v["fitness_level"] == person.level, "user_profile:fitness_level"
        )

    def events(self, *, user_ids: Sequence[str] | None = None, types: Sequence[str] | None = None) -> list[EventLog]:
        with self.platform.sessions() as session:
            query = select(EventLog)
            if user_ids is not None:
                query = query.where(EventLog.user_id.in_(list(user_ids)))
            if types is not None:
                query = query.where(EventLog.event_type.in_(list(types)))
            return list(session.scalars(query))

    def done_recently(self, user_id: str, *, now: datetime | None = None) -> set[str]:
        """Items the user completed or dismissed within the window, from the event log."""
        horizon = (now or datetime.now(UTC)) - WINDOW
        return {
            e.item_id
            for e in self.events(user_ids=[user_id], types=["workout.completed", "recommendation.dismissed"])
            if e.item_id and _aware(e.occurred_at) >= horizon
        }

    def simulated_people(self) -> list[Person]:
        """The simulated users with their profiles as the event log states them (newest profile event wins)."""
        latest: dict[str, EventLog] = {}
        for e in self.events(types=["user.created", "user.profile_updated"]):
            if e.user_id and e.user_id.startswith("u-"):
                have = latest.get(e.user_id)
                if have is None or _aware(e.occurred_at) >= _aware(have.occurred_at):
                    latest[e.user_id] = e
        people = []
        for user_id in sorted(latest):
            p = latest[user_id].properties
            people.append(
                Person(
                    user_id=user_id,
                    goal=p.get("goal"),
                    level=p.get("fitness_level"),
                    equipment=tuple(p.get("equipment") or ()),
                    session_minutes=p.get("session_minutes"),
                )
            )
        return people


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def event(event_type: str, user_id: str | None, item_id: str | None, at: datetime, **properties: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "user_id": user_id,
        "item_id": item_id,
        "occurred_at": at.isoformat(),
        "properties": properties,
    }


def serving_settings(stack: TrainedStack, **overrides: Any) -> ServingSettings:
    values: dict[str, Any] = {
        "model_refresh_s": 0,
        "signal_poll_s": 0.5,
        "rank_timeout_ms": 5000,  # a shared 2-core machine: these tests are about rules, not the latency budget
    }
    return ServingSettings(FITREC_DATA_DIR=stack.data_dir, **values | overrides)


@contextmanager
def running(stack: TrainedStack) -> Iterator[Env]:
    """The app on the stack under real uvicorn, with a client and the facts the tests check against."""
    app = create_app(serving_settings(stack))
    with (
        serve_app(app) as url,
        running_worker(stack.data_dir),
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        platform: Platform = app.state.platform
        with platform.sessions() as session:
            items = list_items(session)
        yield Env(client=client, platform=platform, items=items, stack=stack)


@pytest.fixture(scope="module")
def env(served_stack: TrainedStack) -> Iterator[Env]:
    with running(served_stack) as found:
        yield found


# --- the rules, checked from outside the path -------------------------------------------------------------------


def rule_breaks(env: Env, person: Person, data: list[dict[str, Any]], *, k: int) -> list[str]:
    """What in one answer breaks the issue's rules for this user (empty: nothing)."""
    done = env.done_recently(person.user_id)
    ids = [d["item_id"] for d in data]
    found = []
    if len(ids) != k or len(set(ids)) != k:
        found.append(f"not a full slate of distinct items: {len(ids)} items, {len(set(ids))} distinct, k={k}")
    for item_id in ids:
        item = env.by_id[item_id]
        if not person.may_see(item, done):
            found.append(f"{item_id} ({item.level}, needs {sorted(needs(item))}, premium={item.premium}) infeasible")
    # The cap holds whenever the feasible catalogue can fill k with at most CAP of a category.
    feasible = Counter(i.category for i in env.items if person.may_see(i, done))
    if sum(min(CAP, n) for n in feasible.values()) >= k:
        over = {c: n for c, n in Counter(env.by_id[i].category for i in ids).items() if n > CAP}
        if over:
            found.append(f"more than {CAP} of a category: {over}")
    return found


# --- reasons, checked against the profile, the item, the event log and the online store -------------------------

ENGAGEMENT = tuple(ENGAGEMENT_WEIGHTS)
REASON_KINDS = {
    "equipment": re.compile(r"^Uses the (?P<kit>.+) you have$|^No equipment needed$"),
    "level": re.compile(r"^Right for your level \((?P<level>\w+)\)$"),
    "goal": re.compile(r"^Matches your goal: (?P<goal>.+)$"),
    "recovery": re.compile(
        r"^Light session: (your sleep was short this week \((?P<hours>\d+\.\d) h a night\)|your recovery is low today)$"
    ),
    "completed": re.compile(r"^Because you completed (?P<title>.+)$"),
    "before": re.compile(r"^You did this before$"),
    "segment": re.compile(r"^Popular with (?P<level>\w+)s aiming for (?P<goal>.+)$"),
    "popular": re.compile(r"^Popular on fitrec this month$"),
    "often": re.compile(r"^Because you often do (?P<category>.+)$"),
    "session": re.compile(r"^Fits your (?P<minutes>\d+)-minute sessions$"),
    "finish": re.compile(r"^Most people who start it finish it$"),
    "hard": re.compile(r"^A hard session for a day you are well recovered$"),
    "trainer": re.compile(r"^New from your trainer$"),
    # Descriptive: true by construction, they state what the item is, not why it suits the user.
    "new": re.compile(r"^New: an? (?P<level>\w+) (?P<category>.+) (?P<kind>plan|exercise guide|video|article)$"),
    "describe": re.compile(
        r"^An? (?P<level>\w+) (?P<category>.+) (?P<kind>plan|exercise guide|video|article), (?P<minutes>\d+) min$"
    ),
}
DESCRIPTIVE = frozenset({"new", "describe"})
KINDS = {"plan": "plan", "exercise_guide": "exercise guide", "video": "video", "article": "article"}
RECOVERY_REFS = ("user_health:recovery_score", "user_health:sleep_7d_avg")


@dataclass
class Facts:
    """The event log's facts the reasons state, read once (users made later are read when asked)."""

    env: Env
    now: datetime
    by_user: dict[str, list[EventLog]] = field(default_factory=dict)
    item_counts: Counter[str] = field(default_factory=Counter)  # engagement events per item, last 28 days
    starts: Counter[str] = field(default_factory=Counter)  # enrolls and starts per item, last 28 days
    finishes: Counter[str] = field(default_factory=Counter)  # completions per item, last 28 days
    segment: dict[tuple[str | None, str | None], Counter[str]] = field(default_factory=dict)

    @classmethod
    def read(cls, env: Env, people: Sequence[Person]) -> "Facts":
        facts = cls(env=env, now=datetime.now(UTC))
        month = facts.now - timedelta(days=28)
        profile = {p.user_id: (p.goal, p.level) for p in people}
        for e in env.events(types=[*ENGAGEMENT, "recommendation.dismissed", "health_metric.synced"]):
            if e.user_id is None:
                continue
            facts.by_user.setdefault(e.user_id, []).append(e)
            if e.item_id is None or e.event_type not in ENGAGEMENT_WEIGHTS:
                continue
            if _aware(e.occurred_at) >= month:
                facts.item_counts[e.item_id] += 1
                facts.starts[e.item_id] += e.event_type in ("plan.enrolled", "workout.started")
                facts.finishes[e.item_id] += e.event_type == "workout.completed"
            if e.user_id in profile:
                facts.segment.setdefault(profile[e.user_id], Counter())[e.item_id] += int(
                    ENGAGEMENT_WEIGHTS[e.event_type]
                )
        return facts

    def of(self, user_id: str) -> list[EventLog]:
        if user_id not in self.by_user:
            self.by_user[user_id] = self.env.events(
                user_ids=[user_id], types=[*ENGAGEMENT, "recommendation.dismissed", "health_metric.synced"]
            )
        return self.by_user[user_id]

    def popular_place(self, item_id: str) -> int:
        ranked = sorted(self.item_counts, key=lambda i: (-self.item_counts[i], i))
        return ranked.index(item_id) if item_id in self.item_counts else len(self.env.items)

    def segment_place(self, goal: str | None, level: str | None, item_id: str) -> int:
        counts = self.segment.get((goal, level), Counter())
        ranked = sorted(counts, key=lambda i: (-counts[i], i))
        return ranked.index(item_id) if item_id in counts else len(self.env.items)

    def affinity(self, user_id: str, category: str) -> float:
        """The user's smoothed category share of weighted engagement over 28 days (as user_engagement)."""
        month = self.now - timedelta(days=28)
        weights: Counter[str] = Counter()
        for e in self.of(user_id):
            if e.event_type in ENGAGEMENT_WEIGHTS and e.item_id in self.env.by_id and _aware(e.occurred_at) >= month:
                weights[self.env.by_id[e.item_id].category] += ENGAGEMENT_WEIGHTS[e.event_type]
        return (weights[category] + 2.0 / 7) / (sum(weights.values()) + 2.0)

    def sleep_week_h(self, user_id: str) -> float | None:
        """Mean synced sleep of the last 7 calendar days, hours."""
        first = (self.now - timedelta(days=6)).date()
        sleep = [
            e.properties["sleep_minutes"]
            for e in self.of(user_id)
            if e.event_type == "health_metric.synced"
            and e.properties.get("sleep_minutes") is not None
            and _aware(e.occurred_at).date() >= first
        ]
        return sum(sleep) / len(sleep) / 60 if sleep else None


def reason_kind(reason: str) -> tuple[str, re.Match[str]]:
    for kind, pattern in REASON_KINDS.items():
        found = pattern.match(reason)
        if found:
            return kind, found
    raise AssertionError(f"a reason of no known kind: {reason!r}")


def reason_false(facts: Facts, person: Person, item: Item, reason: str) -> str | None:
    """Why the reason is not true for this user and item (None: it is)."""
    env = facts.env
    kind, m = reason_kind(reason)
    user_events = facts.of(person.user_id)
    if kind == "equipment":
        kit = m["kit"]
        if kit is None:
            return None if not needs(item) else f"{item.item_id} needs {sorted(needs(item))}"
        named = set(kit.split(", "))
        if named != needs(item) or person.equipment is None or not named <= set(person.equipment):
            return f"{item.item_id} needs {sorted(needs(item))}; the user has {person.equipment}"
        return None
    if kind == "level":
        return None if m["level"] == person.level == item.level else f"{item.level} item, user {person.level}"
    if kind == "goal":
        fits = item.goal == person.goal or item.category in GOAL_CATEGORIES.get(person.goal or "", ())
        ok = person.goal is not None and m["goal"] == GOAL_WORDS[person.goal] and fits
        return None if ok else f"{item.category}/{item.goal} item, user goal {person.goal}"
    if kind == "recovery":
        online = env.online(person.user_id, *RECOVERY_REFS)
        if online["recovery_score"] is None or online["recovery_score"] >= 0.4:
            return f"recovery is {online['recovery_score']}, not low"
        if intensity(item) > 0.5:
            return f"{item.item_id} is not light (intensity {intensity(item):.2f})"
        if m["hours"] is not None:
            week = facts.sleep_week_h(person.user_id)
            if week is None or abs(week - float(m["hours"])) > 0.3 or float(m["hours"]) >= 7:
                return f"the event log's sleep this week is {week} h"
        return None
    if kind == "completed":
        titles = {
            env.by_id[e.item_id].title
            for e in user_events
            if e.event_type == "workout.completed" and e.item_id in env.by_id and e.item_id != item.item_id
        }
        return None if m["title"] in titles else f"no completion of {m['title']!r} in the event log"
    if kind == "before":
        acted = any(e.item_id == item.item_id and e.event_type in ENGAGEMENT_WEIGHTS for e in user_events)
        return None if acted else f"no action of the user on {item.item_id} in the event log"
    if kind == "segment":
        if person.level is None or person.goal is None:
            return "the user's segment is unknown"
        if m["level"] != person.level or m["goal"] != GOAL_WORDS[person.goal]:
            return f"segment named {m['level']}/{m['goal']}, user {person.level}/{person.goal}"
        place = facts.segment_place(person.goal, person.level, item.item_id)
        if place == len(env.items):
            return f"no {person.level} aiming for {person.goal} ever used {item.item_id}"
        return None if place < 150 else f"{item.item_id} is #{place} among its segment's items"
    if kind == "popular":
        place = facts.popular_place(item.item_id)
        return None if place < 130 else f"{item.item_id} is #{place} by engagement this month"
    if kind == "often":
        share = facts.affinity(person.user_id, item.category)
        ok = m["category"] == item.category and share >= 1.5 / 7 - 0.03
        return None if ok else f"{item.category} is {share:.2f} of the user's engagement"
    if kind == "session":
        ok = int(m["minutes"]) == person.session_minutes and abs(item.duration_min - int(m["minutes"])) <= 10
        return None if ok else f"{item.duration_min}-minute item, {person.session_minutes}-minute sessions"
    if kind == "finish":
        starts, done = facts.starts[item.item_id], facts.finishes[item.item_id]
        return None if starts and done / starts >= 0.45 else f"{done} completions of {starts} starts"
    if kind == "hard":
        recovery = env.online(person.user_id, *RECOVERY_REFS)["recovery_score"]
        ok = recovery is not None and recovery >= 0.7 and intensity(item) >= 0.6
        return None if ok else f"recovery {recovery}, intensity {intensity(item):.2f}"
    if kind == "trainer":
        trainers = {env.by_id[e.item_id].trainer_id for e in user_events if e.item_id in env.by_id}
        return None if item.trainer_id is not None and item.trainer_id in trainers else "not the user's trainer"
    # descriptive
    if (m["level"], m["category"], m["kind"]) != (item.level, item.category, KINDS[item.item_type]):
        return f"describes {item.level} {item.category} {item.item_type}"
    if kind == "describe" and int(m["minutes"]) != item.duration_min:
        return f"{item.duration_min} min"
    if kind == "new" and item.trainer_id is None:
        return "not a trainer's new item"
    return None


def share(counts: Counter[str], kinds: Sequence[str] | frozenset[str]) -> float:
    return sum(counts[k] for k in kinds) / max(sum(counts.values()), 1)


# --- the tests (the new-item one last: once published, a new item takes a slot in everyone's slate) ---------------


def test_every_simulated_users_top10_is_full_and_obeys_the_rules(env: Env) -> None:
    """Level, equipment, premium, the recent window and at most 3 of a category, for each of 200 users."""
    people = env.simulated_people()
    assert len(people) == env.stack.users
    broken, categories = {}, Counter[int]()
    for person in people:
        body = env.recommend(person.user_id)
        assert body["model_version"] != "fallback:popularity" and body["count"] == 10
        found = rule_breaks(env, person, body["data"], k=10)
        if found:
            broken[person.user_id] = found
        categories[len({env.by_id[d["item_id"]].category for d in body["data"]})] += 1
    assert not broken, broken
    # The rules had work to do: expert items exist for beginners and equipment for those without it.
    assert any(p.level == "beginner" for p in people) and any(i.level == "expert" for i in env.items)
    assert any(p.equipment is not None and needs(i) - set(p.equipment) for p in people for i in env.items)
    assert min(categories) >= 4  # ten items under a cap of three span at least four categories


def test_completed_and_dismissed_items_leave_the_slate_within_seconds(env: Env) -> None:
    """A plan completed through the workouts API, an item dismissed through feedback and a completion ingested
    as an event are gone from the top-50 within seconds; a completion older than the window does not count."""
    person = env.member(goal="general_fitness", level="beginner", equipment=[])
    env.wait_profile(person)
    first = env.recommend(person.user_id, k=50)
    ids = [d["item_id"] for d in first["data"]]
    plan = next(i for i in ids if env.by_id[i].item_type == "plan")
    dismissed, ingested, old = [i for i in ids if env.by_id[i].item_type != "plan"][:3]
    started = time.monotonic()
    now = datetime.now(UTC)

    workout = env.client.post("/v1/workouts", json={"plan_id": plan}, headers=person.headers)
    assert workout.status_code == 201, workout.text
    done = env.client.post(f"/v1/workouts/{workout.json()['id']}/complete", headers=person.headers)
    assert done.status_code == 200, done.text
    feedback = {"request_id": first["request_id"], "item_id": dismissed, "action": "dismiss", "user_id": person.user_id}
    answer = env.client.post("/v1/recommendations/feedback", json=feedback, headers=person.headers)
    assert answer.status_code == 201, answer.text
    summary = {"duration_min": 25, "total_sets": 6, "total_reps": 60, "calories": 150}
    env.send_events(
        person,
        [
            event("workout.completed", person.user_id, ingested, now, session_id="h6-now", **summary),
            event(
                "workout.completed",
                person.user_id,
                old,
                now - WINDOW - timedelta(days=1),
                session_id="h6-old",
                **summary,
            ),
        ],
    )
    gone = {plan, dismissed, ingested}
    assert gone <= env.done_recently(person.user_id) and old not in env.done_recently(person.user_id)
    while gone & set(env.ids(person.user_id, k=50)):
        assert time.monotonic() - started < PUSH_DEADLINE_S, "completed/dismissed items still recommended"
        time.sleep(0.2)
    seconds = time.monotonic() - started
    print(f"completed and dismissed items left the slate {seconds:.1f} s after the actions")
    for k in (10, 50):
        body = env.recommend(person.user_id, k=k)
        assert not gone & {d["item_id"] for d in body["data"]}
        assert not rule_breaks(env, person, body["data"], k=k)
    # The completion of 8 days ago is outside the window: the item may still be recommended.
    recent = env.online(person.user_id, "user_recent_items:recent_items")["recent_items"]
    assert old in recent and plan in recent
    assert old in env.ids(person.user_id, k=50)


# Enough equipment and level that the model ranks a premium item into the top-10 once it may.
PREMIUM_PROFILE: dict[str, Any] = {
    "goal": "general_fitness",
    "level": "expert",
    "equipment": ["barbell", "dumbbell", "cable", "machine", "kettlebells", "bands"],
}


def test_premium_items_only_with_a_trial_or_an_unlock(env: Env) -> None:
    """Three users of one profile: none entitled sees no premium item, a trial opens them, credits open one."""
    nobody, trial, unlock = (env.member(**PREMIUM_PROFILE) for _ in range(3))
    admin = env.member(goal="general_fitness", level="beginner", equipment=[], role="admin")
    started = env.client.post("/v1/entitlements/trial", headers=trial.headers)
    assert started.status_code == 201, started.text
    assert env.client.get("/v1/entitlements/me", headers=trial.headers).json()["premium"] is True
    for person in (nobody, trial, unlock):
        env.wait_profile(person)

    with_trial = env.recommend(trial.user_id, k=50)["data"]
    premium = [d["item_id"] for d in with_trial if env.by_id[d["item_id"]].premium]
    assert premium, "the trial opened no premium item: nothing to test"
    assert not rule_breaks(env, replace(trial, premium=True), with_trial, k=50)
    # The same profile without an entitlement: no premium item at all, still a full slate.
    for k in (10, 50):
        data = env.recommend(nobody.user_id, k=k)["data"]
        assert not [d["item_id"] for d in data if env.by_id[d["item_id"]].premium]
        assert not rule_breaks(env, nobody, data, k=k)

    target = next(i for i in premium if env.by_id[i].item_type != "plan")  # credits unlock content items
    grant = {"user_id": unlock.user_id, "amount": 10, "idempotency_key": f"h6-{uuid.uuid4().hex}"}
    assert env.client.post("/v1/credits/grants", json=grant, headers=admin.headers).status_code == 201
    opened = env.client.post(f"/v1/content/{target}/unlock", headers=unlock.headers)
    assert opened.status_code == 200 and opened.json()["credits_spent"] == 5, opened.text
    data = env.recommend(unlock.user_id, k=50)["data"]
    shown = {d["item_id"] for d in data if env.by_id[d["item_id"]].premium}
    assert shown == {target}
    assert not rule_breaks(env, replace(unlock, unlocked=frozenset({target})), data, k=50)


def test_a_kettlebell_beginner_gets_no_other_equipment_and_nothing_two_levels_up(env: Env) -> None:
    person = env.member(goal="lose_weight", level="beginner", equipment=["kettlebells"])
    env.wait_profile(person)
    data = env.recommend(person.user_id, k=50)["data"]
    items = [env.by_id[d["item_id"]] for d in data]
    assert all(set(i.equipment) <= {"kettlebells", "body only", "none"} for i in items)
    assert all(i.level != "expert" for i in items)
    assert not rule_breaks(env, person, data, k=50)
    # Not an empty victory: what they have is recommended. (Whether one level up reaches their top 50 is the
    # model's call among 150-odd feasible beginner items; that the rule allows it is tests/unit/test_rules_feasible.)
    assert any("kettlebells" in i.equipment for i in items)
    assert any(needs(i) - {"kettlebells"} for i in env.items) and any(i.level == "expert" for i in env.items)


def health_days(person: Person, *, short_days: int, now: datetime) -> list[dict[str, Any]]:
    """Three weeks of daily syncs: 8 h sleep and 55 bpm, the last `short_days` days 4 h 10 min and 72 bpm."""
    out = []
    for back in range(20, -1, -1):
        at = now - timedelta(days=back, minutes=5)
        short = back < short_days
        out.append(
            event(
                "health_metric.synced",
                person.user_id,
                None,
                at,
                day=at.date().isoformat(),
                sleep_minutes=250 if short else 480,
                resting_hr=72 if short else 55,
                steps=8000,
            )
        )
    return out


def test_low_recovery_demotes_hard_sessions_and_says_why(env: Env) -> None:
    """Twins of one profile; one slept 4 h the last 4 nights with a high resting heart rate."""
    profile = {"goal": "build_strength", "level": "intermediate", "equipment": ["barbell"]}
    tired, rested = env.member(**profile), env.member(**profile)
    now = datetime.now(UTC)
    env.send_events(tired, health_days(tired, short_days=4, now=now))
    env.send_events(rested, health_days(rested, short_days=0, now=now))
    env.wait_online(tired.user_id, lambda v: (v["recovery_score"] or 1) < 0.4, *RECOVERY_REFS)
    env.wait_online(rested.user_id, lambda v: v["sleep_7d_avg"] == 480, *RECOVERY_REFS)
    assert env.online(rested.user_id, *RECOVERY_REFS)["recovery_score"] >= 0.4

    def hard(data: list[dict[str, Any]]) -> list[bool]:
        return [intensity(env.by_id[d["item_id"]]) >= 0.7 for d in data]

    rested_data, tired_data = env.recommend(rested.user_id)["data"], env.recommend(tired.user_id)["data"]
    assert any(hard(rested_data)), "the rested twin gets no hard session: nothing to demote"
    flags = hard(tired_data)
    assert sum(flags) < sum(hard(rested_data))
    assert flags == sorted(flags), "a hard session before a lighter one on a low-recovery day"
    assert not rule_breaks(env, tired, tired_data, k=10)
    # The reason says so, with this week's sleep (4 of the last 7 nights short: 348.6 min, 5.8 h).
    week = (4 * 250 + 3 * 480) / 7 / 60
    light = [d for d in tired_data if d["reason"].startswith("Light session:")]
    assert light, [d["reason"] for d in tired_data]
    for d in light:
        assert d["reason"] == f"Light session: your sleep was short this week ({week:.1f} h a night)"
        assert intensity(env.by_id[d["item_id"]]) <= 0.5
    assert not [d for d in rested_data if d["reason"].startswith("Light session:")]


def test_fewer_feasible_candidates_than_k_fill_from_segment_popularity_under_the_rules(env: Env) -> None:
    """A user who dismissed 40 of the model's candidates still gets 50 items, the fills obeying the rules."""
    person = env.member(goal="mobility", level="beginner", equipment=[])
    env.wait_profile(person)
    first = env.recommend(person.user_id, k=50)
    scored = [d["item_id"] for d in first["data"] if d["score"] is not None]
    assert len(scored) >= 40
    dismissed = set(scored[:40])
    for item_id in dismissed:
        body = {"request_id": first["request_id"], "item_id": item_id, "action": "dismiss", "user_id": person.user_id}
        assert env.client.post("/v1/recommendations/feedback", json=body, headers=person.headers).status_code == 201
    started = time.monotonic()
    while dismissed & set(env.ids(person.user_id, k=50)):
        assert time.monotonic() - started < PUSH_DEADLINE_S, "dismissed items still recommended"
        time.sleep(0.2)
    data = env.recommend(person.user_id, k=50)["data"]
    assert not rule_breaks(env, person, data, k=50)
    fills = [d for d in data if d["score"] is None]
    assert fills, "no item came from popularity: the model still had 50 feasible candidates"
    assert {reason_kind(d["reason"])[0] for d in fills} <= {"segment", "popular", "describe"}
    print(f"{len(fills)} of 50 items filled from popularity after 40 dismissals")


def test_reasons_state_only_facts_and_few_are_generic(env: Env) -> None:
    """Every reason of 200 users' top-10 is checked against their profile, the item, the event log and the
    online store; reasons that only describe the item are a minority."""
    people = env.simulated_people()
    facts = Facts.read(env, people)
    kinds, false = Counter[str](), defaultdict(list)
    for person in people:
        for d in env.recommend(person.user_id)["data"]:
            kind, _ = reason_kind(d["reason"])
            kinds[kind] += 1
            why = reason_false(facts, person, env.by_id[d["item_id"]], d["reason"])
            if why is not None and kind != "segment":  # segment reasons: the next test
                false[kind].append((person.user_id, d["item_id"], d["reason"], why))
    assert not false, dict(false)
    descriptive = share(kinds, DESCRIPTIVE)
    print(f"reasons of {sum(kinds.values())} items: {dict(kinds.most_common())}; descriptive {descriptive:.1%}")
    assert descriptive < 0.25
    assert len(kinds) >= 6  # many kinds of reason, not one phrase for everything


def test_segment_reasons_name_items_the_segment_used(env: Env) -> None:
    people = env.simulated_people()
    facts = Facts.read(env, people)
    false = []
    for person in people[:100]:
        for d in env.recommend(person.user_id)["data"]:
            if reason_kind(d["reason"])[0] == "segment":
                why = reason_false(facts, person, env.by_id[d["item_id"]], d["reason"])
                if why is not None:
                    false.append((person.user_id, d["reason"], why))
    assert not false, false[:5]


def test_explain_adds_each_items_top_contributions_with_their_values(env: Env) -> None:
    """explain=true: never cached, each scored item with up to 3 contributions, largest first, whose values are
    the user's and the item's features as stored."""
    from features.schema import FILLS
    from features.services import RANKING_VIEW_FEATURES

    champion = env.client.get("/v1/model", headers=env.service).json()["arms"]["champion"]["version"]
    view_of = {f: view for view, names in RANKING_VIEW_FEATURES.items() for f in names}
    checked = Counter[str]()
    for user_id in ("u-00001", "u-00002", "u-00003"):
        plain = env.recommend(user_id)
        explained = env.recommend(user_id, explain="true")
        assert explained["cached"] is False and explained["model_version"] == plain["model_version"] == champion
        # (Not always the cached slate: the impressions of earlier answers have since changed the user's features.)
        assert explained["count"] == 10 and len({d["item_id"] for d in explained["data"]}) == 10
        assert all("explanation" not in d for d in plain["data"])
        user_refs = [f"{view_of[f]}:{f}" for f in view_of if view_of[f].startswith("user_")]
        user_row = env.online(user_id, *user_refs)
        for d in explained["data"]:
            entries = d["explanation"]
            if d["score"] is None:
                assert entries == []
                continue
            assert 1 <= len(entries) <= 3
            sizes = [abs(e["contribution"]) for e in entries]
            assert sizes == sorted(sizes, reverse=True)
            item = env.by_id[d["item_id"]]
            item_row = env.item_online(item.item_id, *[f"{view_of[f]}:{f}" for f in view_of if f.startswith("item_")])
            known = {
                **{f: FILLS[f] if v is None else v for f, v in user_row.items()},
                **{f: FILLS[f] if v is None else v for f, v in item_row.items()},
                "item_duration_min": item.duration_min,
                "item_premium": float(item.premium),
                "item_is_plan": float(item.item_type == "plan"),
                "item_level_ord": LEVEL[item.level],
                "item_intensity": intensity(item),
            }
            for e in entries:
                assert isinstance(e["feature"], str) and isinstance(e["contribution"], float)
                if e["feature"] in known:
                    assert e["value"] == pytest.approx(float(known[e["feature"]]), abs=1e-6), (d["item_id"], e)
                    checked[e["feature"]] += 1
    assert sum(checked.values()) >= 10, checked  # the values were really compared, not only shaped


def test_similar_items_of_a_catalogue_item(env: Env) -> None:
    item = next(i for i in env.items if i.item_type == "plan" and not i.premium)
    answer = env.client.get(f"/v1/items/{item.item_id}/similar", params={"k": 10}, headers=env.service)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    ids = [d["item_id"] for d in body["data"]]
    assert body["item_id"] == item.item_id and body["count"] == len(ids) == len(set(ids)) == 10
    assert item.item_id not in ids and set(ids) <= set(env.by_id)
    for d in body["data"]:
        other = env.by_id[d["item_id"]]
        same = f"Also a {item.level} {item.category} session"
        assert d["reason"] in (f"People who did {item.title} also do this", f"Like {item.title}", same)
        if d["reason"] == same:
            assert (other.level, other.category) == (item.level, item.category)
    assert env.client.get("/v1/items/no-such-item/similar", headers=env.service).status_code == 404
    for k in (0, 51):
        bad = env.client.get(f"/v1/items/{item.item_id}/similar", params={"k": k}, headers=env.service)
        assert bad.status_code == 422 and bad.json()["error"]["status"] == 422


STALE_DEADLINE_S = 5.0


def cached_slate(env: Env, person: Person, *, k: int = 10) -> list[dict[str, Any]]:
    """The user's top-k once cached for good: after the invalidation that follows their user.created push."""
    env.wait_profile(person)
    time.sleep(1.0)  # the pusher invalidates right after its push; two ticks later that is done
    data = env.recommend(person.user_id, k=k)["data"]
    again = env.recommend(person.user_id, k=k)
    assert again["cached"] is True and again["data"] == data
    return data


def slate_follows(env: Env, person: Person, ok: Callable[[list[dict[str, Any]]], bool], *, k: int = 10) -> None:
    started = time.monotonic()
    while not ok(env.recommend(person.user_id, k=k)["data"]):
        assert time.monotonic() - started < STALE_DEADLINE_S, "the cached slate did not follow the change"
        time.sleep(0.2)


def test_a_cached_slate_follows_a_drop_in_recovery(env: Env) -> None:
    person = env.member(goal="build_strength", level="intermediate", equipment=["barbell"])
    assert any(intensity(env.by_id[d["item_id"]]) >= 0.7 for d in cached_slate(env, person))
    env.send_events(person, health_days(person, short_days=4, now=datetime.now(UTC)))
    env.wait_online(person.user_id, lambda v: (v["recovery_score"] or 1) < 0.4, *RECOVERY_REFS)
    slate_follows(env, person, lambda data: all(intensity(env.by_id[d["item_id"]]) < 0.7 for d in data))


def test_a_cached_slate_follows_a_new_trial(env: Env) -> None:
    person = env.member(**PREMIUM_PROFILE)  # a top-50: premium items need not reach this profile's top-10
    assert not any(env.by_id[d["item_id"]].premium for d in cached_slate(env, person, k=50))
    assert env.client.post("/v1/entitlements/trial", headers=person.headers).status_code == 201
    fresh = env.recommend(person.user_id, k=50, explain="true")["data"]  # never cached: what it should show
    assert any(env.by_id[d["item_id"]].premium for d in fresh)
    slate_follows(env, person, lambda data: any(env.by_id[d["item_id"]].premium for d in data), k=50)


def test_a_dismiss_on_one_replica_reaches_another_replicas_near_copy(
    env: Env, redis_url: str, redis_prefix: str
) -> None:
    """Two replicas share a Redis cache, each with its near copy (30 s by default): the worker's signal drops
    the other replica's copy within seconds, not when the copy expires."""
    person = env.member(goal="build_strength", level="intermediate", equipment=["barbell"])
    env.wait_profile(person)
    time.sleep(1.0)  # the invalidation after the user.created push is done
    shared = serving_settings(
        env.stack, FITREC_SERVING_CACHE_URL=redis_url, cache_prefix=redis_prefix, near_cache_ttl_s=30.0
    )
    with serve_app(create_app(shared)) as one, serve_app(create_app(shared)) as other:

        def slate(base: str) -> dict[str, Any]:
            answer = httpx.get(f"{base}/v1/users/{person.user_id}/recommendations", headers=env.service, timeout=30)
            assert answer.status_code == 200, answer.text
            body: dict[str, Any] = answer.json()
            return body

        served = slate(one)
        assert (served["cached"], slate(other)["cached"], slate(other)["cached"]) == (False, True, True)
        top = served["data"][0]["item_id"]
        body = {"request_id": served["request_id"], "item_id": top, "user_id": person.user_id, "action": "dismiss"}
        sent = httpx.post(f"{one}/v1/recommendations/feedback", json=body, headers=person.headers, timeout=30)
        assert sent.status_code == 201, sent.text
        started = time.monotonic()
        while top in {d["item_id"] for d in slate(other)["data"]}:
            assert time.monotonic() - started < STALE_DEADLINE_S, "the other replica kept serving its near copy"
            time.sleep(0.2)


MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 40  # sniffed as video/mp4


def test_a_published_item_becomes_a_candidate_within_a_minute(env: Env) -> None:
    """A trainer's new video (content.ready) is served without a restart: similar items, and a slot in the
    slate of a user it suits."""
    trainer = env.member(goal="general_fitness", level="expert", equipment=[], role="trainer")
    content = {
        "kind": "video",
        "title": f"Kettlebell flow for beginners {uuid.uuid4().hex[:6]}",
        "category": "strength",
        "level": "beginner",
        "equipment": ["kettlebells"],
        "primary_muscles": ["glutes", "hamstrings"],
        "duration_min": 20,
    }
    created = env.client.post("/v1/content", json=content, headers=trainer.headers)
    assert created.status_code == 201, created.text
    item_id = created.json()["id"]
    assert env.client.get(f"/v1/items/{item_id}/similar", headers=env.service).status_code == 404  # pending
    uploaded = env.client.put(
        f"/v1/content/{item_id}/media", files={"file": ("clip.mp4", MP4, "video/mp4")}, headers=trainer.headers
    )
    assert uploaded.status_code == 200 and uploaded.json()["status"] == "ready", uploaded.text
    started = time.monotonic()
    while (similar := env.client.get(f"/v1/items/{item_id}/similar", headers=env.service)).status_code == 404:
        assert time.monotonic() - started < 60, "the published item is not served after a minute"
        time.sleep(0.2)
    print(f"published item served {time.monotonic() - started:.1f} s after its upload")
    ids = [d["item_id"] for d in similar.json()["data"]]
    assert similar.status_code == 200 and len(ids) == 10 and item_id not in ids

    env.refresh_items()
    person = env.member(goal="lose_weight", level="beginner", equipment=["kettlebells"])
    env.wait_profile(person)
    data = env.recommend(person.user_id)["data"]
    assert not rule_breaks(env, person, data, k=10)
    place = next(n for n, d in enumerate(data) if d["item_id"] == item_id)
    assert place <= 2 and data[place]["reason"] == "New: a beginner strength video"
