"""The ground-truth preference u(user, item) behind every choice the simulated users make.

Personal terms (goal, level, equipment, tastes, session length) vary far more than
the item's own quality, so popularity alone cannot rank well, while every term is
observable from events and the catalogue, so a ranker can learn it.
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


def level_term(pop: Population, table: ItemTable, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    gap = table.level[items].astype(np.int64) - pop.level[users]
    return np.where(gap > 0, LEVEL_TOO_HARD * gap, np.where(gap < 0, LEVEL_TOO_EASY * -gap, LEVEL_EXACT))


def feasible(pop: Population, table: ItemTable, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """True where the user owns every piece of equipment the item needs."""
    return (table.needs[items] & ~pop.has[users]) == 0


def utility(pop: Population, table: ItemTable, quality: np.ndarray, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """u for aligned arrays of user rows and item rows (any equal shapes), noise-free."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
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
    )
