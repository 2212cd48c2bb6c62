"""Names and constants the feature tables share; importable without Feast.

`features` may not import `platform_api`, so the catalogue vocabulary the
features depend on (categories, levels, goals) is restated here; an
integration test checks it against the real catalogue.
"""

import json
from datetime import UTC, datetime

ENTITY_KEYS = {"user": "user_id", "item": "item_id"}
TIMESTAMP = "event_timestamp"
# Windows end this many days after an entity's last event: every windowed value
# is back to zero by then, and "days since"/streak values are capped at it.
HISTORY_DAYS = 60
# Stamped on rows that hold no information yet: the static catalogue and the
# empty first row of every entity (see transforms._with_epoch_row).
FEATURE_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

CATEGORIES = (
    "strength",
    "stretching",
    "plyometrics",
    "powerlifting",
    "olympic weightlifting",
    "strongman",
    "cardio",
)
LEVELS = ("beginner", "intermediate", "expert")
GOAL_CATEGORIES: dict[str, tuple[str, ...]] = {
    "build_strength": ("strength", "powerlifting", "olympic weightlifting", "strongman"),
    "build_muscle": ("strength",),
    "endurance": ("cardio", "plyometrics"),
    "lose_weight": ("cardio", "plyometrics", "strength"),
    "mobility": ("stretching",),
    "general_fitness": ("strength", "stretching", "cardio", "plyometrics"),
}
# Equipment that needs nothing at hand.
NO_EQUIPMENT = frozenset({"body only", "none"})
# How demanding a session of each category is, before its level is considered.
CATEGORY_INTENSITY = {
    "stretching": 0.1,
    "cardio": 0.5,
    "strength": 0.55,
    "plyometrics": 0.75,
    "olympic weightlifting": 0.8,
    "powerlifting": 0.85,
    "strongman": 0.9,
}
# Engagement weight of each action (same order as the ranking labels).
ENGAGEMENT_WEIGHTS = {
    "content.viewed": 1.0,
    "recommendation.clicked": 1.0,
    "plan.enrolled": 2.0,
    "workout.started": 2.0,
    "workout.completed": 3.0,
}
# The events that state a user's whole profile (user.profile_updated carries the profile after
# the change), so the newest one alone gives the profile at any time.
PROFILE_EVENT_TYPES = ("user.created", "user.profile_updated")
# A user's action on an item → its key in user_recent_items (workout events name the plan in item_id).
RECENT_ACTIONS: dict[str, str] = {
    "recommendation.clicked": "clicked",
    "workout.completed": "completed",
    "recommendation.dismissed": "dismissed",
    "plan.enrolled": "enrolled",
    "workout.started": "started",
}
RECENT_ITEMS_TABLE = "user_recent_items"
# What serving reads: store.get_online_features(features=[RECENT_ITEMS_REF], entity_rows={"user_id": [uid]}).
RECENT_ITEMS_REF = f"{RECENT_ITEMS_TABLE}:recent_items"
# The event types the feature tables are built from; the rest of the log is not read.
FEATURE_EVENT_TYPES: tuple[str, ...] = tuple(
    dict.fromkeys(
        (
            *PROFILE_EVENT_TYPES,
            "workout.completed",
            "health_metric.synced",
            "recommendation.impression",
            *ENGAGEMENT_WEIGHTS,
            *RECENT_ACTIONS,
        )
    )
)
# Prior mass that pulls affinities towards uniform for users with little history.
AFFINITY_PRIOR = 2.0


def slug(value: str) -> str:
    return value.replace(" ", "_")


MIX_COLUMNS = tuple(f"mix_{slug(c)}" for c in CATEGORIES)
CATEGORY_AFFINITY_COLUMNS = tuple(f"affinity_{slug(c)}" for c in CATEGORIES)
LEVEL_AFFINITY_COLUMNS = tuple(f"affinity_{lv}" for lv in LEVELS)

USER_PROFILE = ("goal", "fitness_level", "equipment", "session_minutes")
USER_WORKOUT_STATS = (
    "workouts_7d",
    "workouts_28d",
    "minutes_7d",
    "minutes_28d",
    "avg_rpe_28d",
    "streak_days",
    "days_since_last_workout",
    *MIX_COLUMNS,
)
USER_HEALTH = (
    "steps_7d_avg",
    "resting_hr_7d_avg",
    "resting_hr_trend",
    "sleep_7d_avg",
    "sleep_1d",
    "sleep_delta_1d",
    "resting_hr_delta_1d",
    "training_load_3d",
    "recovery_score",
)
USER_ENGAGEMENT = (
    "impressions_28d",
    "clicks_28d",
    "ctr_28d",
    *CATEGORY_AFFINITY_COLUMNS,
    *LEVEL_AFFINITY_COLUMNS,
)
ITEM_STATS = (
    "item_impressions_7d",
    "item_impressions_28d",
    "item_clicks_7d",
    "item_clicks_28d",
    "item_enrolls_7d",
    "item_enrolls_28d",
    "item_completions_7d",
    "item_completions_28d",
    "item_popularity_7d",
    "item_popularity_28d",
    "item_ctr_28d",
    "item_completion_rate_28d",
)
ITEM_CATALOGUE = (
    "item_type",
    "item_category",
    "item_level",
    "item_goal",
    "item_equipment",
    "item_muscles",
    "item_duration_min",
    "item_premium",
    "item_is_plan",
    "item_level_ord",
    "item_intensity",
)
FIT_FEATURES = (
    "level_fit",
    "equipment_fit",
    "intensity_fit",
    "intensity_strain",
    "category_affinity",
    "level_affinity",
    "category_mix",
    "goal_fit",
    "duration_fit",
)

# Feature table name → (entity, feature columns).
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "user_profile": ("user", USER_PROFILE),
    "user_workout_stats": ("user", USER_WORKOUT_STATS),
    "user_health": ("user", USER_HEALTH),
    "user_engagement": ("user", USER_ENGAGEMENT),
    "item_stats": ("item", ITEM_STATS),
    "item_catalogue": ("item", ITEM_CATALOGUE),
    # Not a ranking feature (no feature service holds it): what serving's rules read per user.
    RECENT_ITEMS_TABLE: ("user", ("recent_items",)),
}
STRING_COLUMNS = frozenset(
    {
        "goal",
        "fitness_level",
        "equipment",
        "item_type",
        "item_category",
        "item_level",
        "item_goal",
        "item_equipment",
        "item_muscles",
        "recent_items",
    }
)
INT_COLUMNS = frozenset(
    {
        "session_minutes",
        "workouts_7d",
        "workouts_28d",
        "streak_days",
        "days_since_last_workout",
        "impressions_28d",
        "clicks_28d",
        "item_duration_min",
        "item_is_plan",
        "item_level_ord",
        "item_premium",
        *(c for c in ITEM_STATS if not c.endswith(("_ctr_28d", "_rate_28d"))),
    }
)

# What a missing value means, the same in training and serving: no activity is
# zero activity; an unknown health signal or affinity is neutral.
_NEUTRAL = 0.5
FILLS: dict[str, float | str] = {
    **{c: 0.0 for t in TABLES.values() for c in t[1] if c not in STRING_COLUMNS},
    **{c: "" for c in STRING_COLUMNS},
    "days_since_last_workout": float(HISTORY_DAYS),
    "recovery_score": _NEUTRAL,
    "item_intensity": _NEUTRAL,
    **{c: 1.0 / len(CATEGORIES) for c in CATEGORY_AFFINITY_COLUMNS},
    **{c: 1.0 / len(LEVELS) for c in LEVEL_AFFINITY_COLUMNS},
    **{c: _NEUTRAL for c in FIT_FEATURES},
    # Neutral recovery and intensity (0.5 each): no strain.
    "intensity_strain": 0.0,
}


def parse_recent_items(value: str | None) -> dict[str, dict[str, int]]:
    """A `recent_items` value → {item_id: {action: epoch seconds}}; {} for a user without one (None or "")."""
    if not value:
        return {}
    parsed = json.loads(value)
    if not isinstance(parsed, dict) or not all(isinstance(v, dict) for v in parsed.values()):
        raise ValueError(f"not a recent_items value: {value[:80]!r}")
    return parsed
