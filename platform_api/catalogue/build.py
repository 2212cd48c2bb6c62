"""Turn the public-domain exercise catalogue into content items and workout plans.

Pure functions: the same catalogue file always gives the same items, so item ids
are stable across machines and re-seeding is idempotent.
"""

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CATALOGUE_FILE = Path(__file__).parent / "data" / "exercises.json"

LEVELS = ("beginner", "intermediate", "expert")
# Equipment a plan asks for, grouped the way people describe their set-up.
EQUIPMENT_KITS: dict[str, frozenset[str]] = {
    "bodyweight": frozenset({"body only", "none"}),
    "dumbbells": frozenset({"body only", "none", "dumbbell"}),
    "home": frozenset(
        {"body only", "none", "dumbbell", "bands", "kettlebells", "exercise ball", "foam roll", "medicine ball"}
    ),
    "gym": frozenset(
        {
            "body only",
            "none",
            "dumbbell",
            "barbell",
            "cable",
            "machine",
            "e-z curl bar",
            "kettlebells",
            "bands",
            "other",
            "medicine ball",
            "exercise ball",
            "foam roll",
        }
    ),
}
GOAL_CATEGORIES: dict[str, tuple[str, ...]] = {
    "build_strength": ("strength", "powerlifting", "olympic weightlifting", "strongman"),
    "build_muscle": ("strength",),
    "endurance": ("cardio", "plyometrics"),
    "lose_weight": ("cardio", "plyometrics", "strength"),
    "mobility": ("stretching",),
    "general_fitness": ("strength", "stretching", "cardio", "plyometrics"),
}
GOAL_SHAPE = {  # weeks, sessions per week, minutes per session
    "build_strength": (8, 3, 60),
    "build_muscle": (12, 4, 50),
    "endurance": (6, 4, 35),
    "lose_weight": (8, 5, 30),
    "mobility": (4, 5, 20),
    "general_fitness": (6, 3, 40),
}


@dataclass(frozen=True)
class Exercise:
    id: str
    name: str
    category: str
    level: str
    equipment: str
    mechanic: str | None
    force: str | None
    primary_muscles: tuple[str, ...]
    secondary_muscles: tuple[str, ...]
    instructions: tuple[str, ...]


@dataclass
class ContentSpec:
    id: str
    kind: str
    title: str
    description: str
    category: str
    level: str
    equipment: list[str]
    mechanic: str | None
    force: str | None
    primary_muscles: list[str]
    secondary_muscles: list[str]
    exercise_ids: list[str]
    duration_min: int
    premium: bool


@dataclass
class PlanSpec:
    id: str
    title: str
    goal: str
    level: str
    category: str
    equipment: list[str]
    muscles: list[str]
    exercise_ids: list[str]
    weeks: int
    sessions_per_week: int
    minutes_per_session: int
    premium: bool


@dataclass
class Catalogue:
    exercises: list[Exercise]
    content: list[ContentSpec] = field(default_factory=list)
    plans: list[PlanSpec] = field(default_factory=list)


def load_exercises(path: Path = CATALOGUE_FILE) -> list[Exercise]:
    raw: list[dict[str, Any]] = json.loads(path.read_text())
    return [
        Exercise(
            id=r["id"],
            name=r["name"],
            category=r["category"],
            level=r["level"],
            equipment=r.get("equipment") or "none",
            mechanic=r.get("mechanic"),
            force=r.get("force"),
            primary_muscles=tuple(r.get("primaryMuscles") or ()),
            secondary_muscles=tuple(r.get("secondaryMuscles") or ()),
            instructions=tuple(r.get("instructions") or ()),
        )
        for r in sorted(raw, key=lambda r: r["id"])
    ]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def _guides(exercises: list[Exercise]) -> list[ContentSpec]:
    return [
        ContentSpec(
            id=f"ex-{e.id}",
            kind="exercise_guide",
            title=e.name,
            description=" ".join(e.instructions),
            category=e.category,
            level=e.level,
            equipment=[e.equipment],
            mechanic=e.mechanic,
            force=e.force,
            primary_muscles=list(e.primary_muscles),
            secondary_muscles=list(e.secondary_muscles),
            exercise_ids=[e.id],
            duration_min=5,
            premium=e.level == "expert",
        )
        for e in exercises
    ]


def _articles_and_videos(exercises: list[Exercise]) -> list[ContentSpec]:
    by_muscle: dict[tuple[str, str], list[Exercise]] = defaultdict(list)
    by_category: dict[tuple[str, str], list[Exercise]] = defaultdict(list)
    for e in exercises:
        for m in e.primary_muscles:
            by_muscle[(m, e.level)].append(e)
        by_category[(e.category, e.level)].append(e)
    items: list[ContentSpec] = []
    for (muscle, level), group in sorted(by_muscle.items()):
        if len(group) < 3:
            continue
        picks = group[:6]
        items.append(
            ContentSpec(
                id=f"art-{_slug(muscle)}-{level}",
                kind="article",
                title=f"Training your {muscle}: a {level} guide",
                description="Exercises: " + ", ".join(e.name for e in picks),
                category=max(sorted({e.category for e in group}), key=lambda c: sum(e.category == c for e in group)),
                level=level,
                equipment=sorted({e.equipment for e in picks}),
                mechanic=None,
                force=None,
                primary_muscles=[muscle],
                secondary_muscles=[],
                exercise_ids=[e.id for e in picks],
                duration_min=8,
                premium=False,
            )
        )
    for (category, level), group in sorted(by_category.items()):
        if len(group) < 4:
            continue
        picks = group[:8]
        items.append(
            ContentSpec(
                id=f"vid-{_slug(category)}-{level}",
                kind="video",
                title=f"Follow-along {category} session ({level})",
                description="In this session: " + ", ".join(e.name for e in picks),
                category=category,
                level=level,
                equipment=sorted({e.equipment for e in picks}),
                mechanic=None,
                force=None,
                primary_muscles=sorted({m for e in picks for m in e.primary_muscles}),
                secondary_muscles=[],
                exercise_ids=[e.id for e in picks],
                duration_min=20 + 5 * LEVELS.index(level),
                premium=True,
            )
        )
    return items


def _plans(exercises: list[Exercise]) -> list[PlanSpec]:
    plans: list[PlanSpec] = []
    for goal, categories in GOAL_CATEGORIES.items():
        weeks, sessions, minutes = GOAL_SHAPE[goal]
        for level in LEVELS:
            allowed_levels = LEVELS[: LEVELS.index(level) + 1]
            for kit, equipment in EQUIPMENT_KITS.items():
                pool = [
                    e
                    for e in exercises
                    if e.category in categories and e.level in allowed_levels and e.equipment in equipment
                ]
                if len(pool) < 6:
                    continue
                # Prefer exercises at the plan's own level, compound first, then by name.
                pool.sort(key=lambda e: (e.level != level, e.mechanic != "compound", e.name))
                picks = pool[: 6 + 2 * LEVELS.index(level)]
                main_category = max(categories, key=lambda c: sum(e.category == c for e in picks))
                plans.append(
                    PlanSpec(
                        id=f"plan-{_slug(goal)}-{level}-{kit}",
                        title=f"{goal.replace('_', ' ').capitalize()}: {level} {kit} plan",
                        goal=goal,
                        level=level,
                        category=main_category,
                        equipment=sorted({e.equipment for e in picks}),
                        muscles=sorted({m for e in picks for m in e.primary_muscles}),
                        exercise_ids=[e.id for e in picks],
                        weeks=weeks + 2 * LEVELS.index(level),
                        sessions_per_week=sessions,
                        minutes_per_session=minutes + 5 * LEVELS.index(level),
                        premium=kit == "gym" and level == "expert",
                    )
                )
    return plans


def build_catalogue(path: Path = CATALOGUE_FILE) -> Catalogue:
    exercises = load_exercises(path)
    return Catalogue(
        exercises=exercises, content=_guides(exercises) + _articles_and_videos(exercises), plans=_plans(exercises)
    )
