"""The product's rules: what a user may be recommended, read from what the platform knows of them now.

A rule either makes an item infeasible (never shown) or demotes it (shown only after the rest):

- completed or dismissed within `recent_window` (default 7 days, from the online store's recent items);
- premium without an entitlement (an active trial or subscription, or credits that unlocked the item);
- more than `max_level_above` levels above the user's level (an unknown level counts as beginner);
- needing equipment the user said they lack (a user who said nothing is not filtered);
- demoted: high-intensity items while the user's recovery is low.
"""

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from features.schema import GOAL_CATEGORIES, LEVELS
from serving.ranking.catalogue import LEVEL_ORD, Catalogue

# Online features the rules and reasons read beside the ranking features (one read per request).
RECENT_ITEMS_REF = "user_recent_items:recent_items"
EXTRA_USER_REFS = (RECENT_ITEMS_REF, "user_health:sleep_7d_avg", "user_health:recovery_score")
GOAL_WORDS = {
    "build_strength": "strength",
    "build_muscle": "muscle gain",
    "endurance": "endurance",
    "lose_weight": "weight loss",
    "mobility": "mobility",
    "general_fitness": "general fitness",
}


@dataclass(frozen=True)
class RuleSettings:
    recent_window_s: float = 7 * 86400.0
    max_level_above: int = 1
    max_per_category: int = 3
    low_recovery: float = 0.4  # recovery_score below this is low
    high_intensity: float = 0.7  # item intensity at or above this is demoted on a low day
    light_intensity: float = 0.5  # at or below this is a light session
    short_sleep_min: float = 420.0  # a 7-day average below 7 h a night is short


@dataclass(frozen=True)
class Access:
    """What premium content the user may open now."""

    premium: bool  # an active trial or subscription
    unlocked: frozenset[str] = frozenset()  # items unlocked with credits


NO_ACCESS = Access(premium=False)


@dataclass
class UserContext:
    """What the rules and reasons know of one user, read once per ranking."""

    user_id: str
    level: int  # index in features.schema.LEVELS (unknown: beginner)
    level_known: bool
    goal: str | None
    equipment: tuple[str, ...] | None  # None: the user said nothing
    session_minutes: float | None
    recovery: float | None
    sleep_7d_min: float | None
    recent: dict[str, dict[str, float]]  # item id → action → epoch seconds of its newest time
    access: Access
    row: Mapping[str, Any] = field(default_factory=dict)  # every online value read (ranking features too)

    @classmethod
    def from_row(cls, user_id: str, row: Mapping[str, Any], access: Access) -> "UserContext":
        level_name = _text(row.get("fitness_level"))
        equipment = row.get("equipment")
        return cls(
            user_id=user_id,
            level=LEVEL_ORD.get(level_name or "", 0),
            level_known=level_name in LEVEL_ORD,
            goal=_text(row.get("goal")),
            equipment=None if equipment is None else tuple(e for e in str(equipment).split(",") if e),
            session_minutes=_number(row.get("session_minutes")),
            recovery=_number(row.get("recovery_score")),
            sleep_7d_min=_number(row.get("sleep_7d_avg")),
            recent=parse_recent(row.get("recent_items")),
            access=access,
            row=row,
        )

    @property
    def level_name(self) -> str:
        return LEVELS[self.level]

    def low_recovery(self, settings: RuleSettings) -> bool:
        return self.recovery is not None and self.recovery < settings.low_recovery

    def done(self, action: str) -> list[str]:
        """Items with this action in the recent items, newest first."""
        found = [(t[action], item) for item, t in self.recent.items() if action in t]
        return [item for _, item in sorted(found, reverse=True)]

    def goal_categories(self) -> tuple[str, ...]:
        return GOAL_CATEGORIES.get(self.goal or "", ())


def parse_recent(value: Any) -> dict[str, dict[str, float]]:
    """The recent-items JSON of the online store ({} when missing or unreadable)."""
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def feasible(catalogue: Catalogue, user: UserContext, *, now_s: float, settings: RuleSettings) -> np.ndarray:
    """Per catalogue item, whether the user may be shown it."""
    ok = catalogue.level <= user.level + settings.max_level_above
    if user.equipment is not None:
        has = catalogue.equipment_mask(user.equipment)
        ok &= (catalogue.needs & ~has) == 0
    if not user.access.premium:
        unlocked = np.isin(catalogue.ids, list(user.access.unlocked)) if user.access.unlocked else False
        ok &= ~catalogue.premium | unlocked
    horizon = now_s - settings.recent_window_s
    recent = [
        item
        for item, times in user.recent.items()
        if max(times.get("completed", -math.inf), times.get("dismissed", -math.inf)) >= horizon
    ]
    if recent:
        positions = catalogue.positions(recent)
        ok[positions[positions >= 0]] = False
    return ok


def demoted(catalogue: Catalogue, user: UserContext, settings: RuleSettings) -> np.ndarray:
    """Per catalogue item, whether it goes after the others (hard sessions on a low-recovery day)."""
    if not user.low_recovery(settings):
        return np.zeros(len(catalogue.ids), dtype=bool)
    return catalogue.intensity >= settings.high_intensity


def conservative(catalogue: Catalogue) -> np.ndarray:
    """What any user may be shown when nothing is known of them (the fallback answer): free, no equipment,
    at most one level above beginner."""
    return (~catalogue.premium) & (catalogue.needs == 0) & (catalogue.level <= 1)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
