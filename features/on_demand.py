"""On-demand features that join a user and an item at request time.

`ranking_fit` is a plain pandas function: the Feast on-demand view calls it for
training sets, and serving calls it directly on its candidate frame, so both
compute the same numbers.
"""

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from feast import FeatureView
    from feast.on_demand_feature_view import OnDemandFeatureView

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
_LEVEL_FIT = np.array([0.4, 0.7, 1.0, 0.5, 0.1])  # indexed by difference + 2
_LEVEL_ORD = {lv: i for i, lv in enumerate(LEVELS)}
_CATEGORY_ORD = {c: i for i, c in enumerate(CATEGORIES)}


def filled(col: str, values: pd.Series | np.ndarray | None, n: int) -> np.ndarray:
    """One column as an array with its FILLS value where missing (None: the whole column is missing)."""
    fill = FILLS[col]
    if isinstance(fill, str):
        if values is None:
            return np.full(n, fill, dtype=object)
        arr = np.asarray(values, dtype=object).copy()
        arr[pd.isna(arr)] = fill
        return arr
    if values is None:
        return np.full(n, float(fill))
    arr = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return np.where(np.isnan(arr), float(fill), arr)


def fill_inputs(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each fit input as an array with FILLS applied to missing values (absent columns count as missing)."""
    return {col: filled(col, df[col] if col in df.columns else None, len(df)) for col in FIT_INPUTS}


def _codes(values: np.ndarray, mapping: dict[str, int]) -> np.ndarray:
    return np.fromiter((mapping.get(v, -1) for v in values), dtype=np.int64, count=len(values))


def _pick(matrix: np.ndarray, codes: np.ndarray, default: float) -> np.ndarray:
    """Row-wise matrix[i, codes[i]], `default` where the code is unknown."""
    safe = np.where(codes >= 0, codes, 0)
    picked = matrix[np.arange(len(codes)), safe]
    return np.where(codes >= 0, picked, default)


# Rows repeat the same few (user, item) attribute pairs: each pair is computed once per process.
@lru_cache(maxsize=1 << 16)
def _equipment_fit(have: str, need: str) -> float:
    needed = {e for e in need.split(",") if e} - NO_EQUIPMENT
    if not needed:
        return 1.0
    return len(needed & set(have.split(","))) / len(needed)


@lru_cache(maxsize=1 << 16)
def _goal_fit(goal: str, item_goal: str, category: str) -> float:
    if item_goal:
        return 1.0 if item_goal == goal else 0.0
    return 1.0 if category in GOAL_CATEGORIES.get(goal, ()) else 0.0


def ranking_fit(df: pd.DataFrame) -> pd.DataFrame:
    """User × item fits from FIT_INPUTS columns → the FIT_FEATURES columns, same index."""
    fits = fit_arrays(fill_inputs(df), len(df))
    return pd.DataFrame(fits, index=df.index, columns=list(FIT_FEATURES), dtype=np.float64)


def fit_arrays(x: Mapping[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The fits from already filled FIT_INPUTS arrays of length n (see `fill_inputs`)."""
    known_user = x["fitness_level"] != ""

    user_lvl = _codes(x["fitness_level"], _LEVEL_ORD)
    item_lvl = _codes(x["item_level"], _LEVEL_ORD)
    both = (user_lvl >= 0) & (item_lvl >= 0)
    level_fit = np.where(both, _LEVEL_FIT[np.clip(item_lvl - user_lvl + 2, 0, 4)], NEUTRAL)

    equipment_fit = np.fromiter(map(_equipment_fit, x["equipment"], x["item_equipment"]), np.float64, count=n)
    equipment_fit = np.where(known_user, equipment_fit, NEUTRAL)

    # Well recovered users are served harder sessions; poorly recovered ones lighter.
    target = 0.2 + 0.7 * x["recovery_score"]
    intensity_fit = 1.0 - np.abs(x["item_intensity"] - target)
    # How much more demanding the session is than the user's recovery (0: within it). One-sided:
    # being well recovered does not make a light session worse. The ranker learns its weight.
    intensity_strain = np.maximum(0.0, x["item_intensity"] - x["recovery_score"])

    cat = _codes(x["item_category"], _CATEGORY_ORD)
    affinities = np.column_stack([x[c] for c in CATEGORY_AFFINITY_COLUMNS]) if n else np.empty((0, len(CATEGORIES)))
    mixes = np.column_stack([x[c] for c in MIX_COLUMNS]) if n else np.empty((0, len(CATEGORIES)))
    level_affinities = np.column_stack([x[c] for c in LEVEL_AFFINITY_COLUMNS]) if n else np.empty((0, len(LEVELS)))
    category_affinity = _pick(affinities, cat, 1.0 / len(CATEGORIES))
    category_mix = _pick(mixes, cat, 0.0)
    level_affinity = _pick(level_affinities, item_lvl, 1.0 / len(LEVELS))

    goal_fit = np.fromiter(map(_goal_fit, x["goal"], x["item_goal"], x["item_category"]), np.float64, count=n)
    goal_fit = np.where(x["goal"] != "", goal_fit, NEUTRAL)

    session, duration = x["session_minutes"], x["item_duration_min"]
    with np.errstate(divide="ignore", invalid="ignore"):
        duration_fit = 1.0 - np.minimum(np.abs(duration - session) / session, 1.0)
    duration_fit = np.where(known_user & (session > 0), duration_fit, NEUTRAL)

    return {
        "level_fit": level_fit,
        "equipment_fit": equipment_fit,
        "intensity_fit": intensity_fit,
        "intensity_strain": intensity_strain,
        "category_affinity": category_affinity,
        "level_affinity": level_affinity,
        "category_mix": category_mix,
        "goal_fit": goal_fit,
        "duration_fit": duration_fit,
    }


def on_demand_views(views: dict[str, "FeatureView"]) -> list["OnDemandFeatureView"]:
    """The on-demand views over the given feature views (their projections carry the views' batch sources)."""

    # Defined per call: Feast's decorator re-homes the function it wraps (to pickle it by value).
    def ranking_fit_view(inputs: pd.DataFrame) -> pd.DataFrame:
        from features.on_demand import ranking_fit  # resolved at call time: the registry stores this body

        return ranking_fit(inputs)

    odfv = on_demand_feature_view(
        sources=[
            views["user_profile"][["fitness_level", "equipment", "goal", "session_minutes"]],
            views["user_health"][["recovery_score"]],
            views["user_engagement"][[*CATEGORY_AFFINITY_COLUMNS, *LEVEL_AFFINITY_COLUMNS]],
            views["user_workout_stats"][list(MIX_COLUMNS)],
            views["item_catalogue"][list(ITEM_INPUTS)],
        ],
        schema=[Field(name=name, dtype=Float64) for name in FIT_FEATURES],
        mode="pandas",
        name="ranking_fit",
        description="User × item fits: level, equipment, recovery-aware intensity, affinities, goal, duration",
    )(ranking_fit_view)
    return [odfv]
