"""On-demand features that join a user and an item at request time.

`ranking_fit` is a plain pandas function: the Feast on-demand view calls it for
training sets, and serving calls it directly on its candidate frame, so both
compute the same numbers.
"""

import numpy as np
import pandas as pd
from feast import Field
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64

from features.schema import (
    CATEGORIES,
    CATEGORY_AFFINITY_COLUMNS,
    FILLS,
    FIT_FEATURES,
    GOAL_CATEGORIES,
    LEVEL_AFFINITY_COLUMNS,
    LEVELS,
    MIX_COLUMNS,
    NO_EQUIPMENT,
)
from features.views import item_catalogue, user_engagement, user_health, user_profile, user_workout_stats

USER_INPUTS = (
    "fitness_level",
    "equipment",
    "goal",
    "session_minutes",
    "recovery_score",
    *CATEGORY_AFFINITY_COLUMNS,
    *LEVEL_AFFINITY_COLUMNS,
    *MIX_COLUMNS,
)
ITEM_INPUTS = ("item_category", "item_level", "item_equipment", "item_goal", "item_duration_min", "item_intensity")
FIT_INPUTS = USER_INPUTS + ITEM_INPUTS
NEUTRAL = 0.5
# Item level minus user level → fit; too hard hurts more than too easy.
_LEVEL_FIT = {-2: 0.4, -1: 0.7, 0: 1.0, 1: 0.5, 2: 0.1}
_LEVEL_ORD = {lv: i for i, lv in enumerate(LEVELS)}
_CATEGORY_ORD = {c: i for i, c in enumerate(CATEGORIES)}


def fill_inputs(df: pd.DataFrame) -> pd.DataFrame:
    """The fit inputs with FILLS applied to missing values (absent columns count as missing)."""
    out = pd.DataFrame(index=df.index)
    for col in FIT_INPUTS:
        fill = FILLS[col]
        series = df[col] if col in df.columns else pd.Series(fill, index=df.index)
        out[col] = series.astype(object).where(series.notna(), fill)
    return out


def _codes(values: pd.Series, mapping: dict[str, int]) -> np.ndarray:
    return values.map(mapping).fillna(-1).to_numpy(dtype=np.int64)


def _pick(matrix: np.ndarray, codes: np.ndarray, default: float) -> np.ndarray:
    """Row-wise matrix[i, codes[i]], `default` where the code is unknown."""
    safe = np.where(codes >= 0, codes, 0)
    picked = matrix[np.arange(len(codes)), safe]
    return np.where(codes >= 0, picked, default)


def _equipment_fit(have: str, need: str) -> float:
    needed = {e for e in need.split(",") if e} - NO_EQUIPMENT
    if not needed:
        return 1.0
    return len(needed & set(have.split(","))) / len(needed)


def _goal_fit(goal: str, item_goal: str, category: str) -> float:
    if item_goal:
        return 1.0 if item_goal == goal else 0.0
    return 1.0 if category in GOAL_CATEGORIES.get(goal, ()) else 0.0


def _pairwise(a: pd.Series, b: pd.Series, c: pd.Series | None, fn) -> np.ndarray:  # type: ignore[no-untyped-def]
    # Many rows share the same (user, item) attribute pair: compute each pair once.
    cols = [a.astype(str), b.astype(str)] + ([c.astype(str)] if c is not None else [])
    keys = pd.MultiIndex.from_arrays(cols)
    codes, uniques = pd.factorize(keys)
    values = np.fromiter((fn(*u) for u in uniques), dtype=np.float64, count=len(uniques))
    return values[codes] if len(codes) else np.empty(0)


def ranking_fit(df: pd.DataFrame) -> pd.DataFrame:
    """User × item fits from FIT_INPUTS columns → the FIT_FEATURES columns, same index."""
    x = fill_inputs(df)
    known_user = (x["fitness_level"] != "").to_numpy()

    user_lvl = _codes(x["fitness_level"], _LEVEL_ORD)
    item_lvl = _codes(x["item_level"], _LEVEL_ORD)
    both = (user_lvl >= 0) & (item_lvl >= 0)
    level_fit = np.where(both, pd.Series(item_lvl - user_lvl).map(_LEVEL_FIT).to_numpy(dtype=np.float64), NEUTRAL)

    equipment_fit = _pairwise(x["equipment"], x["item_equipment"], None, _equipment_fit)
    equipment_fit = np.where(known_user, equipment_fit, NEUTRAL)

    # Well recovered users are served harder sessions; poorly recovered ones lighter.
    recovery = x["recovery_score"].to_numpy(dtype=np.float64)
    target = 0.2 + 0.7 * recovery
    intensity_fit = 1.0 - np.abs(x["item_intensity"].to_numpy(dtype=np.float64) - target)

    cat = _codes(x["item_category"], _CATEGORY_ORD)
    category_affinity = _pick(x[list(CATEGORY_AFFINITY_COLUMNS)].to_numpy(dtype=np.float64), cat, 1.0 / len(CATEGORIES))
    category_mix = _pick(x[list(MIX_COLUMNS)].to_numpy(dtype=np.float64), cat, 0.0)
    level_affinity = _pick(x[list(LEVEL_AFFINITY_COLUMNS)].to_numpy(dtype=np.float64), item_lvl, 1.0 / len(LEVELS))

    goal_fit = _pairwise(x["goal"], x["item_goal"], x["item_category"], _goal_fit)
    goal_fit = np.where((x["goal"] != "").to_numpy(), goal_fit, NEUTRAL)

    session = x["session_minutes"].to_numpy(dtype=np.float64)
    duration = x["item_duration_min"].to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        duration_fit = 1.0 - np.minimum(np.abs(duration - session) / session, 1.0)
    duration_fit = np.where(known_user & (session > 0), duration_fit, NEUTRAL)

    out = pd.DataFrame(
        {
            "level_fit": level_fit,
            "equipment_fit": equipment_fit,
            "intensity_fit": intensity_fit,
            "category_affinity": category_affinity,
            "level_affinity": level_affinity,
            "category_mix": category_mix,
            "goal_fit": goal_fit,
            "duration_fit": duration_fit,
        },
        index=df.index,
    )
    return out[list(FIT_FEATURES)].astype(np.float64)


@on_demand_feature_view(
    sources=[
        user_profile[["fitness_level", "equipment", "goal", "session_minutes"]],
        user_health[["recovery_score"]],
        user_engagement[[*CATEGORY_AFFINITY_COLUMNS, *LEVEL_AFFINITY_COLUMNS]],
        user_workout_stats[list(MIX_COLUMNS)],
        item_catalogue[list(ITEM_INPUTS)],
    ],
    schema=[Field(name=name, dtype=Float64) for name in FIT_FEATURES],
    mode="pandas",
    name="ranking_fit",
    description="User × item fits: level, equipment, recovery-aware intensity, affinities, goal, duration",
)
def ranking_fit_view(inputs: pd.DataFrame) -> pd.DataFrame:
    from features.on_demand import ranking_fit  # resolved at call time: the registry stores this body

    return ranking_fit(inputs)


ON_DEMAND_VIEWS = [ranking_fit_view]
