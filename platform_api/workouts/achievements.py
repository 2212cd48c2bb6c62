"""Streaks (consecutive UTC days with a completed workout) and the achievements they unlock."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class AchievementRule:
    code: str
    title: str
    workouts: int = 0  # completed workouts needed
    streak: int = 0  # consecutive days needed


RULES: tuple[AchievementRule, ...] = (
    AchievementRule("first_workout", "First workout done", workouts=1),
    AchievementRule("workouts_10", "10 workouts completed", workouts=10),
    AchievementRule("workouts_50", "50 workouts completed", workouts=50),
    AchievementRule("workouts_100", "100 workouts completed", workouts=100),
    AchievementRule("streak_3", "3-day streak", streak=3),
    AchievementRule("streak_7", "7-day streak", streak=7),
    AchievementRule("streak_30", "30-day streak", streak=30),
)
TITLES = {r.code: r.title for r in RULES}


def current_streak(days: Iterable[date], *, today: date) -> int:
    """Consecutive days with a workout ending today (or yesterday: a streak lasts until a day is missed)."""
    have = set(days)
    day = today if today in have else today - timedelta(days=1)
    streak = 0
    while day in have:
        streak += 1
        day -= timedelta(days=1)
    return streak


def longest_streak(days: Iterable[date]) -> int:
    ordered = sorted(set(days))
    best = run = 0
    for i, day in enumerate(ordered):
        run = run + 1 if i and day - ordered[i - 1] == timedelta(days=1) else 1
        best = max(best, run)
    return best


def earned(*, completed: int, streak: int) -> list[str]:
    """Every achievement the numbers qualify for (already-held ones are filtered by the caller)."""
    return [r.code for r in RULES if completed >= r.workouts and streak >= r.streak]
