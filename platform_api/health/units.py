"""Unit normalisation of health measurements into the canonical units of the event contract.

| metric | canonical field | accepted units |
|---|---|---|
| steps | steps (count) | count, steps |
| active_time | active_minutes | min, minutes, h, hours, s, seconds |
| resting_hr | resting_hr (beats/min) | bpm, beats/min |
| sleep | sleep_minutes | min, minutes, h, hours, s, seconds |
| weight | weight_kg | kg, g, lb, lbs, st |
"""

from typing import Literal

Metric = Literal["steps", "active_time", "resting_hr", "sleep", "weight"]

LB_KG = 0.45359237  # exact, by definition of the international pound
STONE_KG = 14 * LB_KG
_TIME_MIN = {
    "min": 1.0,
    "minute": 1.0,
    "minutes": 1.0,
    "h": 60.0,
    "hr": 60.0,
    "hour": 60.0,
    "hours": 60.0,
    "s": 1 / 60,
    "sec": 1 / 60,
    "second": 1 / 60,
    "seconds": 1 / 60,
}

# metric -> (canonical field, {unit: factor to the canonical unit}, canonical unit, integer?)
METRICS: dict[str, tuple[str, dict[str, float], str, bool]] = {
    "steps": ("steps", {"count": 1.0, "steps": 1.0}, "count", True),
    "active_time": ("active_minutes", _TIME_MIN, "min", True),
    "resting_hr": ("resting_hr", {"bpm": 1.0, "beats/min": 1.0}, "bpm", False),
    "sleep": ("sleep_minutes", _TIME_MIN, "min", True),
    "weight": ("weight_kg", {"kg": 1.0, "g": 0.001, "lb": LB_KG, "lbs": LB_KG, "st": STONE_KG}, "kg", False),
}


class UnitError(ValueError):
    pass


def normalise(metric: str, value: float, unit: str | None) -> tuple[str, float | int]:
    """(canonical field, value in its canonical unit); UnitError for a unit the metric does not take."""
    field, factors, canonical, integer = METRICS[metric]
    key = (unit or canonical).strip().lower()
    if key not in factors:
        raise UnitError(f"unit {unit!r} is not a unit of {metric}; use one of {', '.join(sorted(factors))}")
    converted = value * factors[key]
    return field, round(converted) if integer else round(converted, 2)
