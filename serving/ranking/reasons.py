"""Reasons that are true for the user and the item, and say what put the item in the slate.

The order of trust: a product rule that acted (a light session on a low-recovery day, a new item of the
user's trainer), then the features that raised the ranker's score most for this item (its own
contributions, measured against the slate's mean), each turned into words only when the fact it states
holds for this user and item; then where a fill came from (the segment's or everyone's popularity).
Nothing here says something it has not checked; when no driver's fact holds, the reason describes the item.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from features.schema import slug
from platform_api.catalogue.service import Item
from serving.ranking.rules import GOAL_WORDS, RuleSettings, UserContext
from serving.ranking.slate import FRESH, POPULAR, SEGMENT

# An item this high in a popularity list may be called popular.
POPULAR_TOP = 100
# A category affinity this many times the uniform share is "often".
OFTEN = 1.5
KIND_WORDS = {"plan": "plan", "exercise_guide": "exercise guide", "video": "video", "article": "article"}
SOURCES_OF_HISTORY = ("ease", "two_tower", "history", "sequence", "spectral", "ials", "rp3beta")


@dataclass
class ReasonFacts:
    """What reasons may check, for one user (shared by the items of one slate)."""

    user: UserContext
    settings: RuleSettings
    segment_rank: Mapping[str, int]  # item id → place in the user's segment popularity (0 = first)
    popular_rank: Mapping[str, int]  # item id → place in overall popularity
    trainers: set[str]  # trainers whose items the user acted on
    anchor: Callable[[str], Item | None]  # the completed item most like this one, if any


def reason_for(
    item: Item, *, origin: str, new: bool, drivers: Sequence[str], row: Mapping[str, Any], facts: ReasonFacts
) -> str:
    """The reason of one pick: `origin` is where the slate took it from, `new` whether it is newly published,
    `drivers` the features that raised its score most (best first), `row` its ranking features."""
    user, settings = facts.user, facts.settings
    if user.low_recovery(settings) and _intensity(row) <= settings.light_intensity:
        if user.sleep_7d_min is not None and user.sleep_7d_min < settings.short_sleep_min:
            return f"Light session: your sleep was short this week ({user.sleep_7d_min / 60:.1f} h a night)"
        return "Light session: your recovery is low today"
    if new and item.trainer_id and item.trainer_id in facts.trainers:
        return "New from your trainer"
    if origin == FRESH:
        text = f"{item.level} {item.category} {KIND_WORDS.get(item.item_type, item.item_type)}"
        return f"New: {_article(text).lower()} {text}"
    if origin == SEGMENT:
        return _segment(item, facts) or _popular(item, facts) or describe(item)
    if origin == POPULAR:
        return _popular(item, facts) or describe(item)
    for feature in drivers:
        said = _from_driver(feature, item, row, facts)
        if said:
            return said
    return describe(item)


def describe(item: Item) -> str:
    """What the item is (true by construction): the last resort when no driver's fact holds."""
    text = f"{item.level} {item.category} {KIND_WORDS.get(item.item_type, item.item_type)}"
    return f"{_article(text)} {text}, {item.duration_min} min"


def _article(text: str) -> str:
    return "An" if text[:1].lower() in "aeiou" else "A"


def _from_driver(feature: str, item: Item, row: Mapping[str, Any], facts: ReasonFacts) -> str | None:
    user = facts.user
    name = feature.lower()
    if name == "user_item_history":
        return "You did this before" if _positive(row.get("user_item_history")) else None
    if any(name.startswith(source + "_") for source in SOURCES_OF_HISTORY) or name.startswith("content_"):
        anchor = facts.anchor(item.item_id)
        if anchor is not None:
            return f"Because you completed {anchor.title}"
        if name.startswith("content_"):
            return _affinity(item, user)
        return None
    if name.startswith("popularity_") or name.startswith("item_popularity") or name.startswith("item_clicks"):
        return _segment(item, facts) or _popular(item, facts)
    if name.startswith("item_completion"):
        rate = row.get("item_completion_rate_28d")
        return "Most people who start it finish it" if rate is not None and rate >= 0.5 else None
    if name.startswith("goal"):
        if user.goal and (item.goal == user.goal or item.category in user.goal_categories()):
            return f"Matches your goal: {GOAL_WORDS.get(user.goal, user.goal)}"
        return None
    if name.startswith("level"):
        if user.level_known and item.level == user.level_name:
            return f"Right for your level ({user.level_name})"
        return None
    if name.startswith("equipment"):
        needs = [e for e in item.equipment if e not in ("body only", "none")]
        if user.equipment is None:
            return None
        if not needs:
            return "No equipment needed"
        if set(needs) <= set(user.equipment):
            return f"Uses the {', '.join(sorted(set(needs)))} you have"
        return None
    if "affinity" in name or name.startswith("mix_") or name == "category_mix":
        return _affinity(item, user)
    if name.startswith("duration") or name == "session_minutes" or name == "item_duration_min":
        minutes = user.session_minutes
        if minutes is not None and abs(item.duration_min - minutes) <= 10:
            return f"Fits your {minutes:.0f}-minute sessions"
        return None
    if name.startswith("intensity") or name == "recovery_score":
        recovery = user.recovery
        if recovery is not None and recovery >= 0.7 and _intensity(row) >= 0.6:
            return "A hard session for a day you are well recovered"
        return None
    return None


def _affinity(item: Item, user: UserContext) -> str | None:
    value = user.row.get(f"affinity_{slug(item.category)}")
    if value is not None and float(value) >= OFTEN / 7:
        return f"Because you often do {item.category}"
    return None


def _segment(item: Item, facts: ReasonFacts) -> str | None:
    user = facts.user
    place = facts.segment_rank.get(item.item_id)
    if place is None or place >= POPULAR_TOP or not user.level_known or not user.goal:
        return None
    return f"Popular with {user.level_name}s aiming for {GOAL_WORDS.get(user.goal, user.goal)}"


def _popular(item: Item, facts: ReasonFacts) -> str | None:
    place = facts.popular_rank.get(item.item_id)
    return "Popular on fitrec this month" if place is not None and place < POPULAR_TOP else None


def _intensity(row: Mapping[str, Any]) -> float:
    value = row.get("item_intensity")
    return float(value) if value is not None else 0.5


def _positive(value: Any) -> bool:
    return value is not None and float(value) > 0
