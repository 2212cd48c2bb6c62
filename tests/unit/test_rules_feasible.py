"""The product rules on a small catalogue: level, equipment, premium and the recent window, item by item."""

import json
import time

import pytest

from platform_api.catalogue.service import Item
from serving.ranking.catalogue import Catalogue
from serving.ranking.rules import NO_ACCESS, Access, RuleSettings, UserContext, feasible

pytestmark = pytest.mark.unit


def item(
    item_id: str, *, level: str = "beginner", equipment: tuple[str, ...] = ("body only",), premium: bool = False
) -> Item:
    return Item(item_id, "exercise_guide", item_id, "strength", level, None, equipment, (), 20, premium)


CATALOGUE = Catalogue(
    [
        item("easy"),
        item("one-up", level="intermediate"),
        item("two-up", level="expert"),
        item("bell", equipment=("kettlebells",)),
        item("dumbbell", equipment=("dumbbell",)),
        item("paid", premium=True),
    ],
    {},
)


def allowed(row: dict[str, object], access: Access = NO_ACCESS, **settings: float) -> set[str]:
    user = UserContext.from_row("u", row, access)
    mask = feasible(CATALOGUE, user, now_s=time.time(), settings=RuleSettings(**settings))  # type: ignore[arg-type]
    return set(CATALOGUE.ids[mask].tolist())


def test_a_beginner_with_kettlebells_gets_one_level_up_and_their_equipment_only() -> None:
    assert allowed({"fitness_level": "beginner", "equipment": "kettlebells"}) == {"easy", "one-up", "bell"}


def test_an_unknown_level_counts_as_beginner_and_unsaid_equipment_filters_nothing() -> None:
    assert allowed({}) == {"easy", "one-up", "bell", "dumbbell"}
    assert allowed({"fitness_level": "beginner"}, max_level_above=2) == {"easy", "one-up", "two-up", "bell", "dumbbell"}


def test_premium_needs_a_subscription_or_the_item_unlocked() -> None:
    assert "paid" in allowed({}, Access(premium=True))
    assert "paid" in allowed({}, Access(premium=False, unlocked=frozenset({"paid"})))
    assert "paid" not in allowed({}, Access(premium=False, unlocked=frozenset({"easy"})))


def test_completed_or_dismissed_within_the_window_is_out_and_older_or_started_is_not() -> None:
    now = time.time()
    recent = {
        "easy": {"completed": now - 3600},
        "bell": {"dismissed": now - 86400},
        "one-up": {"completed": now - 8 * 86400},
        "dumbbell": {"started": now - 60},
    }
    assert allowed({"recent_items": json.dumps(recent)}) == {"one-up", "dumbbell"}
