"""The ground-truth preference u(user, item) behind every choice the simulated users make.

Personal terms (goal, level, equipment, tastes, session length) vary far more than
the item's own quality, so popularity alone cannot rank well, while every term is
observable from events and the catalogue, so a ranker can learn it.

One term changes from day to day: a user whose recovery is low (short sleep,
resting heart rate above its usual level, hard training in the last days) does
not want a session more demanding than that recovery tolerates. Recovery is
the simulator's latent state (training.simulation.behaviour); what the user's
events show of it is sleep, resting heart rate and completed workouts.
"""

import numpy as np

from training.simulation.catalogue import PLAN, VIDEO, ItemTable
from training.simulation.population import Population

GOAL_PLAN_MATCH = 1.2  # a plan made for the user's goal
GOAL_PLAN_RELATED = 0.2  # another goal's plan in a category serving the user's goal
GOAL_PLAN_OTHER = -0.8
GOAL_CONTENT_MATCH = 0.6
GOAL_CONTENT_OTHER = -0.5
LEVEL_EXACT = 0.4
LEVEL_TOO_HARD = -1.3  # per level above the user's
LEVEL_TOO_EASY = -0.5  # per level below
EQUIPMENT_MISSING = -3.0
SESSION_MISFIT = -0.9  # per unit of |log(item minutes / preferred minutes)|, plans and videos only
PREMIUM = -0.4  # for users without a subscription
QUALITY_SD = 0.4
# Utility per unit of item intensity above what the day's recovery tolerates.
STRAIN_PENALTY = -6.0
# Tolerated intensity = TOLERANCE_FLOOR + TOLERANCE_SPAN * recovery: fully recovered tolerates everything.
TOLERANCE_FLOOR = 0.25
TOLERANCE_SPAN = 0.75
# The less recovered, the more a light session appeals (active recovery) and a demanding one does not:
# REST_PREFERENCE * (1 - recovery) * (REST_PIVOT - intensity).
REST_PREFERENCE = 2.0
REST_PIVOT = 0.5


def level_term(pop: Population, table: ItemTable, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    gap = table.level[items].astype(np.int64) - pop.level[users]
    return np.where(gap > 0, LEVEL_TOO_HARD * gap, np.where(gap < 0, LEVEL_TOO_EASY * -gap, LEVEL_EXACT))


def feasible(pop: Population, table: ItemTable, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """True where the user owns every piece of equipment the item needs."""
    return (table.needs[items] & ~pop.has[users]) == 0


def excess_intensity(table: ItemTable, items: np.ndarray, recovery: np.ndarray) -> np.ndarray:
    """How far each item's intensity lies above what `recovery` (aligned with items, in [0, 1]) tolerates."""
    tolerated = TOLERANCE_FLOOR + TOLERANCE_SPAN * np.asarray(recovery, dtype=np.float64)
    return np.maximum(0.0, table.intensity[items] - tolerated)


def utility(
    pop: Population,
    table: ItemTable,
    quality: np.ndarray,
    users: np.ndarray,
    items: np.ndarray,
    recovery: np.ndarray | None = None,
) -> np.ndarray:
    """u for aligned arrays of user rows and item rows (any equal shapes), noise-free.

    `recovery` (aligned with the rows, in [0, 1]) is each user's recovery at the
    moment of choosing; None means fully recovered (no item is too demanding).
    """
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    strain: np.ndarray | float = 0.0
    if recovery is not None:
        rest = REST_PREFERENCE * (1.0 - np.asarray(recovery, dtype=np.float64)) * (REST_PIVOT - table.intensity[items])
        strain = STRAIN_PENALTY * excess_intensity(table, items, recovery) + rest
    ugoal = pop.goal[users]
    serves = table.serves[ugoal, table.category[items]]
    is_plan = table.kind[items] == PLAN
    goal = np.where(
        is_plan,
        np.where(table.goal[items] == ugoal, GOAL_PLAN_MATCH, np.where(serves, GOAL_PLAN_RELATED, GOAL_PLAN_OTHER)),
        np.where(serves, GOAL_CONTENT_MATCH, GOAL_CONTENT_OTHER),
    )
    timed = is_plan | (table.kind[items] == VIDEO)
    misfit = np.abs(np.log(table.duration[items] / pop.session[users]))
    return (
        goal
        + level_term(pop, table, users, items)
        + np.where(feasible(pop, table, users, items), 0.0, EQUIPMENT_MISSING)
        + pop.affinity[users, table.category[items]]
        + np.where(timed, SESSION_MISFIT * misfit, 0.0)
        + quality[items]
        + np.where(table.premium[items] & ~pop.subscriber[users], PREMIUM, 0.0)
        + strain
    )
