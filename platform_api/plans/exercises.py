"""Read-only lookups into the exercise catalogue for validating what users and trainers send."""

from functools import lru_cache

from platform_api.catalogue.build import Exercise, load_exercises


@lru_cache(maxsize=1)
def exercises_by_id() -> dict[str, Exercise]:
    """The catalogue's exercises by id (read once, on first use)."""
    return {e.id: e for e in load_exercises()}


def unknown_exercises(ids: list[str]) -> list[str]:
    known = exercises_by_id()
    return [i for i in ids if i not in known]
