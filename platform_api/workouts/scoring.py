"""The performance score of a completed workout, 0-100.

score = 100 × (0.5 × volume + 0.3 × effort + 0.2 × time), each part in [0, 1]:
- volume: sets done over sets planned (3 per exercise of the plan; 12 for a free workout), capped at 1;
- effort: 1 at a mean perceived exertion of 7.5 (hard but sustainable), falling linearly to 0 at
  2.5 or 12.5; 0.5 when no exertion was logged;
- time: minutes trained over the plan's minutes per session (30 for a free workout), capped at 1.
"""

SETS_PER_EXERCISE = 3
FREE_TARGET_SETS = 12
FREE_TARGET_MINUTES = 30
TARGET_RPE = 7.5


def performance_score(
    *,
    total_sets: int,
    mean_rpe: float | None,
    duration_min: float,
    planned_exercises: int | None,
    planned_minutes: int | None,
) -> int:
    target_sets = SETS_PER_EXERCISE * planned_exercises if planned_exercises else FREE_TARGET_SETS
    volume = min(1.0, total_sets / target_sets)
    effort = 0.5 if mean_rpe is None else max(0.0, 1 - abs(mean_rpe - TARGET_RPE) / 5)
    time = min(1.0, duration_min / (planned_minutes or FREE_TARGET_MINUTES))
    return round(100 * (0.5 * volume + 0.3 * effort + 0.2 * time))
