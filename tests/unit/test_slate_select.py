"""The slate's greedy walk: the category cap, the demoted tier, and a full slate."""

import numpy as np

from serving.ranking.slate import MODEL, POPULAR, select

CATEGORIES = np.array(["a", "a", "b", "b", "c", "c", "d", "d"])


def _ids(picks: list) -> list[int]:
    return [p.position for p in picks]


def test_a_demoted_item_comes_after_a_lighter_one_from_a_later_source() -> None:
    allowed = np.ones(8, dtype=bool)
    late = np.array([False, False, True, True, False, False, False, False])
    picks = select(
        [(MODEL, np.array([2, 0, 3])), (POPULAR, np.array([4, 5, 6]))],
        categories=CATEGORIES,
        allowed=allowed,
        k=4,
        cap=2,
        late=late,
    )
    # The model's favourite (2) is hard: the popular light items go first, the hard ones only after them.
    assert _ids(picks) == [0, 4, 5, 6]
    assert [p.origin for p in picks] == [MODEL, POPULAR, POPULAR, POPULAR]


def test_the_cap_holds_before_demotion_and_gives_way_last() -> None:
    allowed = np.ones(8, dtype=bool)
    late = np.array([False, False, True, False, False, False, False, False])
    only = np.array([0, 1, 2, 3])  # a, a, b (hard), b
    # The hard b goes before a second a (the cap is a rule), and after the light b.
    assert _ids(select([(MODEL, only)], categories=CATEGORIES, allowed=allowed, k=2, cap=1, late=late)) == [0, 3]
    assert _ids(select([(MODEL, only[:3])], categories=CATEGORIES, allowed=allowed, k=2, cap=1, late=late)) == [0, 2]
    # Not enough within the cap: the walk goes on without it, light items before the hard one.
    assert _ids(select([(MODEL, only)], categories=CATEGORIES, allowed=allowed, k=4, cap=1, late=late)) == [0, 3, 1, 2]


def test_infeasible_items_are_never_taken_and_the_slate_is_as_full_as_the_feasible_ones() -> None:
    allowed = np.array([True, False, True, False, True, False, False, False])
    picks = select([(MODEL, np.arange(8))], categories=CATEGORIES, allowed=allowed, k=10, cap=1)
    assert _ids(picks) == [0, 2, 4]
