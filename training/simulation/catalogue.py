"""Items as numpy columns, and the exercises each item's workouts are made of.

`training` may not import `platform_api`, so items are duck-typed (`ItemLike`) and
the few catalogue facts the simulator needs (levels, goals, which categories serve
which goal) are restated here as the simulator's own beliefs about people.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np

from features.schema import CATEGORY_INTENSITY, GOAL_CATEGORIES

LEVELS = ("beginner", "intermediate", "expert")
GOALS = ("lose_weight", "build_muscle", "build_strength", "endurance", "mobility", "general_fitness")
ITEM_TYPES = ("plan", "exercise_guide", "video", "article")
PLAN, GUIDE, VIDEO, ARTICLE = range(4)
# Equipment everybody has at hand.
FREE_EQUIPMENT = ("body only", "none")


class ItemLike(Protocol):
    """What the simulator reads of an item (the attributes of the platform's catalogue `Item`)."""

    @property
    def item_id(self) -> str: ...
    @property
    def item_type(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def level(self) -> str: ...
    @property
    def goal(self) -> str | None: ...
    @property
    def equipment(self) -> Sequence[str]: ...
    @property
    def muscles(self) -> Sequence[str]: ...
    @property
    def duration_min(self) -> int: ...
    @property
    def premium(self) -> bool: ...


@dataclass(frozen=True)
class ItemTable:
    ids: list[str]
    index: dict[str, int]
    kind: np.ndarray  # int8, index into ITEM_TYPES
    category: np.ndarray  # int16, index into categories
    categories: tuple[str, ...]
    level: np.ndarray  # int8, index into LEVELS
    goal: np.ndarray  # int8, index into GOALS, -1 for content
    needs: np.ndarray  # int64 bitmask over equipment (free equipment has no bit)
    equipment: tuple[str, ...]  # bit i of a mask is equipment[i]
    duration: np.ndarray  # float minutes
    premium: np.ndarray  # bool
    intensity: np.ndarray  # float in [0, 1]: how demanding a session of the item is
    serves: np.ndarray  # bool (len(GOALS), len(categories)): category serves goal
    exercises: np.ndarray  # int32 (n_items, width), -1 padded: exercise rows of each item's workouts
    n_exercises: np.ndarray  # int32
    exercise_ids: list[str]
    exercise_category: np.ndarray  # int16 into categories
    exercise_level: np.ndarray  # int8
    exercise_equipment: np.ndarray  # int16 into equipment, -1 for free equipment

    def __len__(self) -> int:
        return len(self.ids)

    def mask_of(self, names: Sequence[str]) -> int:
        mask = 0
        for name in names:
            if name in self.equipment:
                mask |= 1 << self.equipment.index(name)
        return mask


def _code(value: str, vocab: Sequence[str], what: str, item_id: str) -> int:
    try:
        return vocab.index(value)
    except ValueError:
        raise ValueError(f"item {item_id}: unknown {what} {value!r}; expected one of {', '.join(vocab)}") from None


def build_item_table(items: Sequence[ItemLike]) -> ItemTable:
    if not items:
        raise ValueError("the simulator needs at least one item")
    ids = [it.item_id for it in items]
    if len(set(ids)) != len(ids):
        raise ValueError("item ids must be unique")
    categories = tuple(sorted({it.category for it in items} | {c for cs in GOAL_CATEGORIES.values() for c in cs}))
    equipment = tuple(sorted({e for it in items for e in it.equipment} - set(FREE_EQUIPMENT)))
    if len(equipment) > 62:
        raise ValueError("more than 62 kinds of equipment do not fit the bitmask")
    bit = {name: 1 << i for i, name in enumerate(equipment)}
    kind = np.array([_code(it.item_type, ITEM_TYPES, "item_type", it.item_id) for it in items], dtype=np.int8)
    level = np.array([_code(it.level, LEVELS, "level", it.item_id) for it in items], dtype=np.int8)
    goal = np.array([GOALS.index(it.goal) if it.goal in GOALS else -1 for it in items], dtype=np.int8)
    needs = np.array([sum(bit.get(e, 0) for e in set(it.equipment)) for it in items], dtype=np.int64)
    category = np.array([categories.index(it.category) for it in items], dtype=np.int16)
    serves = np.zeros((len(GOALS), len(categories)), dtype=bool)
    for g, goal_name in enumerate(GOALS):
        for c in GOAL_CATEGORIES[goal_name]:
            serves[g, categories.index(c)] = True
    ex = _exercises(items, kind, category, level, goal, needs, equipment, serves)
    return ItemTable(
        ids=ids,
        index={item_id: i for i, item_id in enumerate(ids)},
        kind=kind,
        category=category,
        categories=categories,
        level=level,
        goal=goal,
        needs=needs,
        equipment=equipment,
        duration=np.array([max(1, int(it.duration_min)) for it in items], dtype=np.float64),
        premium=np.array([bool(it.premium) for it in items], dtype=bool),
        intensity=item_intensity(category, level, categories),
        serves=serves,
        exercises=ex.matrix,
        n_exercises=ex.sizes,
        exercise_ids=ex.ids,
        exercise_category=ex.category,
        exercise_level=ex.level,
        exercise_equipment=ex.equipment,
    )


def item_intensity(category: np.ndarray, level: np.ndarray, categories: Sequence[str]) -> np.ndarray:
    """How demanding each item is: its category's intensity, pushed up by harder levels, within [0, 1].

    The same definition as the catalogue feature `item_intensity` (features.transforms): the
    simulated people feel the effort the catalogue describes.
    """
    base = np.array([CATEGORY_INTENSITY.get(c, 0.5) for c in categories])[category]
    return np.clip(base + 0.15 * (level.astype(np.float64) - 1), 0.0, 1.0)


class _Exercises(NamedTuple):
    matrix: np.ndarray
    sizes: np.ndarray
    ids: list[str]
    category: np.ndarray
    level: np.ndarray
    equipment: np.ndarray


def _exercises(
    items: Sequence[ItemLike],
    kind: np.ndarray,
    category: np.ndarray,
    level: np.ndarray,
    goal: np.ndarray,
    needs: np.ndarray,
    equipment: tuple[str, ...],
    serves: np.ndarray,
) -> _Exercises:
    """Which catalogue exercises each item's workouts log.

    An item may carry `exercise_ids`; otherwise an exercise guide is its own
    exercise ("ex-<id>") and a plan or video takes the guides it could be built
    from (its categories, at most its level, only its equipment), own level first.
    """
    ex_ids: list[str] = []
    ex_row: dict[str, int] = {}
    ex_cat: list[int] = []
    ex_lvl: list[int] = []
    ex_eq: list[int] = []

    def add(ex_id: str, i: int) -> int:
        if ex_id not in ex_row:
            ex_row[ex_id] = len(ex_ids)
            ex_ids.append(ex_id)
            ex_cat.append(int(category[i]))
            ex_lvl.append(int(level[i]))
            own = [e for e in items[i].equipment if e in equipment]
            ex_eq.append(equipment.index(own[0]) if own else -1)
        return ex_row[ex_id]

    guides = np.flatnonzero(kind == GUIDE)
    per_item: list[list[int]] = [[] for _ in items]
    for i in guides.tolist():
        given = getattr(items[i], "exercise_ids", None)
        per_item[i] = [add(e, i) for e in (given or [items[i].item_id.removeprefix("ex-")])]
    for i in np.flatnonzero(kind != GUIDE).tolist():
        given = getattr(items[i], "exercise_ids", None)
        if given:
            per_item[i] = [ex_row[e] if e in ex_row else add(e, i) for e in given]
            continue
        cats = serves[goal[i]] if goal[i] >= 0 else np.arange(serves.shape[1]) == category[i]
        fits = cats[category[guides]] & (level[guides] <= level[i]) & ((needs[guides] & ~needs[i]) == 0)
        pool = guides[fits]
        if pool.size == 0:
            pool = guides[category[guides] == category[i]]
        if pool.size == 0:
            per_item[i] = [add(f"{items[i].item_id}-exercise", i)]
            continue
        # Own level first, then catalogue order: stable, so the same items give the same workouts.
        pool = pool[np.argsort(level[pool] != level[i], kind="stable")]
        take = 6 + 2 * int(level[i]) if kind[i] == PLAN else 8
        per_item[i] = [per_item[g][0] for g in pool[:take].tolist()]
    width = max(len(p) for p in per_item)
    matrix = np.full((len(items), width), -1, dtype=np.int32)
    for i, rows in enumerate(per_item):
        matrix[i, : len(rows)] = rows
    return _Exercises(
        matrix=matrix,
        sizes=np.array([len(p) for p in per_item], dtype=np.int32),
        ids=ex_ids,
        category=np.array(ex_cat, dtype=np.int16),
        level=np.array(ex_lvl, dtype=np.int8),
        equipment=np.array(ex_eq, dtype=np.int16),
    )
