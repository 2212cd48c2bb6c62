"""Calories from METs: kcal = MET × body weight (kg) × hours.

MET per exercise category of the catalogue, from the Compendium of Physical Activities
(Ainsworth et al., 2011; codes in brackets):

| category | MET | compendium activity |
|---|---|---|
| strength, moderate effort (mean RPE < 7) | 3.5 | resistance training, multiple exercises, 8-15 reps (02054) |
| strength, vigorous effort (mean RPE ≥ 7) | 6.0 | weight lifting, power lifting or body building, vigorous (02050) |
| powerlifting, olympic weightlifting, strongman | 6.0 | as above, vigorous (02050) |
| cardio | 7.3 | aerobic exercise, general (03015) |
| plyometrics | 8.0 | calisthenics, vigorous: jumping, burpees (02020) |
| stretching | 2.3 | stretching, mild (02101) |
| anything else / a workout without logged sets | 3.5 | general conditioning, moderate (02054) |

The session's duration is split across categories in proportion to each category's
estimated working time: a set's logged duration, else 3 s per repetition, else 30 s.
Without a weight from the user's health data, 70 kg is assumed.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

MET: dict[str, float] = {
    "strength": 3.5,
    "strength_vigorous": 6.0,
    "powerlifting": 6.0,
    "olympic weightlifting": 6.0,
    "strongman": 6.0,
    "cardio": 7.3,
    "plyometrics": 8.0,
    "stretching": 2.3,
}
DEFAULT_MET = 3.5
DEFAULT_WEIGHT_KG = 70.0
VIGOROUS_RPE = 7.0
SECONDS_PER_REP = 3
SECONDS_PER_SET = 30


@dataclass(frozen=True)
class SetWork:
    category: str
    reps: int
    duration_s: int
    rpe: float | None


def met_for(category: str, mean_rpe: float | None) -> float:
    if category == "strength" and mean_rpe is not None and mean_rpe >= VIGOROUS_RPE:
        return MET["strength_vigorous"]
    return MET.get(category, DEFAULT_MET)


def working_seconds(s: SetWork) -> int:
    if s.duration_s > 0:
        return s.duration_s
    return s.reps * SECONDS_PER_REP if s.reps > 0 else SECONDS_PER_SET


def calories(
    sets: Iterable[SetWork], *, duration_min: float, weight_kg: float | None, fallback_category: str | None = None
) -> float:
    """Energy of a session in kcal, rounded to 0.1."""
    weight = weight_kg or DEFAULT_WEIGHT_KG
    hours = duration_min / 60
    work: dict[str, float] = defaultdict(float)
    rpes: dict[str, list[float]] = defaultdict(list)
    for s in sets:
        work[s.category] += working_seconds(s)
        if s.rpe is not None:
            rpes[s.category].append(s.rpe)
    if not work:
        return round(MET.get(fallback_category or "", DEFAULT_MET) * weight * hours, 1)
    total = sum(work.values())
    kcal = 0.0
    for category, seconds in work.items():
        mean_rpe = sum(rpes[category]) / len(rpes[category]) if rpes[category] else None
        kcal += met_for(category, mean_rpe) * weight * hours * seconds / total
    return round(kcal, 1)
