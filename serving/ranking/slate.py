"""The slate: a constrained greedy re-rank (at most `cap` items of a category), filled from segment and
overall popularity under the same rules, never shorter than k while the catalogue has feasible items.

Each pick remembers where it came from (the model, the segment's popularity, overall popularity), so the
reason says what actually put it there.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MODEL, SEGMENT, POPULAR, FRESH = "model", "segment", "popular", "fresh"


@dataclass(frozen=True)
class Pick:
    position: int  # in the catalogue
    origin: str  # MODEL, SEGMENT, POPULAR or FRESH


def select(
    sources: Sequence[tuple[str, np.ndarray]],
    *,
    categories: np.ndarray,
    allowed: np.ndarray,
    k: int,
    cap: int,
    late: np.ndarray | None = None,
) -> list[Pick]:
    """Walk each (origin, catalogue positions best first) source in turn, taking allowed items while their
    category has fewer than `cap` picks, the demoted ones (`late`) only once no other source has an item
    left; if that leaves fewer than k, walk them again without the cap. The cap is a rule, demotion a
    preference: a hard session fills a slot before a fourth item of a category does."""
    picks: list[Pick] = []
    taken: set[int] = set()
    counts: dict[object, int] = {}
    late = np.zeros(len(allowed), dtype=bool) if late is None else late
    tiers = (False, True) if late.any() else (False,)
    for capped in (True, False):
        for tier in tiers:
            for origin, order in sources:
                for position in order.tolist():
                    if len(picks) == k:
                        return picks
                    if position in taken or not allowed[position] or late[position] != tier:
                        continue
                    category = categories[position]
                    if capped and counts.get(category, 0) >= cap:
                        continue
                    taken.add(position)
                    counts[category] = counts.get(category, 0) + 1
                    picks.append(Pick(position, origin))
    return picks


def with_fresh(picks: list[Pick], fresh: int | None, *, categories: np.ndarray, slot: int, cap: int) -> list[Pick]:
    """Give a new item (`fresh`, a catalogue position) a place no lower than `slot` if it has none, in place
    of the last pick of a category that would otherwise go over the cap (else of the last pick)."""
    if fresh is None or not picks or any(p.position == fresh for p in picks):
        return picks
    same = [i for i, p in enumerate(picks) if categories[p.position] == categories[fresh]]
    drop = same[-1] if len(same) >= cap else len(picks) - 1
    kept = [p for i, p in enumerate(picks) if i != drop]
    kept.insert(min(slot, len(kept)), Pick(fresh, FRESH))
    return kept
