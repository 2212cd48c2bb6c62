"""The sequence-aware item Gram, the spectral generator and the validation-tuned blend."""

import numpy as np
import pandas as pd
import pytest

from models.generators import BlendGenerator, EASEGenerator, InteractionIndex, PopularityGenerator, item_gram
from models.generators.base import binarize
from models.generators.blend import combine, standardised, tune_weights

pytestmark = pytest.mark.unit


def history(user: str, items: list[str], start: int = 0) -> list[dict[str, object]]:
    return [{"user_id": user, "item_id": item, "timestamp": start + t} for t, item in enumerate(items)]


@pytest.fixture
def sequences() -> pd.DataFrame:
    return pd.DataFrame(history("u1", ["a", "b", "c", "d", "e"]) + history("u2", ["e", "d", "x"], start=100))


def test_pairs_close_in_a_history_weigh_more_than_pairs_far_apart(sequences: pd.DataFrame) -> None:
    index = InteractionIndex.build(sequences)
    gram = item_gram(sequences, index, window=1.0, floor=0.2).toarray()
    code = {item: i for i, item in enumerate(index.item_ids)}
    near, far = gram[code["a"], code["b"]], gram[code["a"], code["e"]]
    assert near == pytest.approx(0.2 + 0.8 * np.exp(-1.0))  # neighbours in u1's history
    assert far == pytest.approx(0.2 + 0.8 * np.exp(-4.0))  # four positions apart
    assert gram[code["d"], code["e"]] == pytest.approx(2 * (0.2 + 0.8 * np.exp(-1.0)))  # both users
    assert np.allclose(gram, gram.T)
    assert np.allclose(np.diag(gram), [2 if item in ("d", "e") else 1 for item in index.item_ids])
    assert np.linalg.eigvalsh(gram).min() > -1e-9  # still a Gram matrix: EASE's closed form applies


def test_the_gram_is_plain_co_occurrence_without_a_window_or_timestamps(sequences: pd.DataFrame) -> None:
    index = InteractionIndex.build(sequences)
    x = binarize(index.matrix)
    plain = (x.T @ x).toarray()
    assert np.allclose(item_gram(sequences, index).toarray(), plain)
    assert np.allclose(item_gram(sequences, index, window=2.0, floor=1.0).toarray(), plain)
    assert np.allclose(item_gram(sequences.drop(columns="timestamp"), index, window=2.0).toarray(), plain)


def test_the_gram_does_not_depend_on_row_order_or_on_ties_listing(sequences: pd.DataFrame) -> None:
    tied = sequences.assign(timestamp=sequences["timestamp"] // 2)  # pairs of items at the same time
    index = InteractionIndex.build(tied)
    shuffled = tied.sample(frac=1.0, random_state=3)
    first = item_gram(tied, index, window=2.0).toarray()
    assert np.allclose(first, item_gram(shuffled, index, window=2.0).toarray())


def test_sequence_ease_tells_a_series_apart_from_items_used_far_away_in_the_same_histories() -> None:
    # Everyone watches series A and series B, one early and one late in their history, with unrelated
    # items between: A's and B's episodes co-occur in every history alike, so only their distance in the
    # history says which episodes belong together.
    rng = np.random.default_rng(0)
    a, b = [f"a{e}" for e in range(6)], [f"b{e}" for e in range(6)]
    rows = []
    for user in range(60):
        filler = [f"f{i}" for i in rng.choice(80, 12, replace=False)]
        rows += history(f"u{user}", (a + filler + b) if user % 2 else (b + filler + a))
    rows += history("new", ["a0", "a1"])
    frame = pd.DataFrame(rows)
    episodes = a[2:] + b

    def scores(model: EASEGenerator) -> dict[str, float]:
        return dict(zip(episodes, model.fit(frame).score_pairs(["new"] * len(episodes), episodes), strict=True))

    plain = scores(EASEGenerator(l2=5.0))
    assert max(plain.values()) - min(plain.values()) < 1e-9  # co-occurrence alone cannot tell them apart
    sequence = scores(EASEGenerator(l2=5.0, window=2.0))
    assert min(sequence[e] for e in ("a2", "a3")) > 1.5 * max(sequence[e] for e in b)
    assert sequence["a2"] == max(sequence.values())  # the next episode first


def test_standardised_scores_ignore_seen_and_missing_items() -> None:
    scores = np.array([[1.0, 2.0, 3.0, 100.0, -np.inf]])
    seen = np.array([[False, False, False, True, False]])
    z = standardised(scores, seen)
    assert z[0, :3] == pytest.approx([-np.sqrt(1.5), 0.0, np.sqrt(1.5)])
    assert np.isnan(z[0, 4])
    blended = combine([z, np.full_like(z, np.nan)], [1.0, 1.0])
    assert blended[0, 4] == -np.inf and blended[0, 2] == pytest.approx(np.sqrt(1.5))


def test_tune_weights_climbs_to_the_best_grid_point() -> None:
    target = [1.0, 0.35, 0.0, 0.75]

    def evaluate(weights: list[float]) -> float:  # peaked at the target, component 0 the best alone
        return -sum((w - t) ** 2 for w, t in zip(weights, target, strict=True))

    weights, value = tune_weights(4, evaluate)
    assert weights == target and value == pytest.approx(0.0)


def test_a_blend_with_a_single_weight_ranks_as_its_component() -> None:
    frame = pd.DataFrame(history("u1", ["a", "b", "c"]) + history("u2", ["b", "c", "d"]) + history("u3", ["a", "d"]))
    ease = EASEGenerator(l2=1.0)
    blend = BlendGenerator([ease, PopularityGenerator()], [1.0, 0.0]).fit(frame)
    alone = ease.recommend(["u1", "u3"], 2)
    mixed = blend.recommend(["u1", "u3"], 2)
    assert mixed[["user_id", "item_id", "rank"]].equals(alone[["user_id", "item_id", "rank"]])
    assert set(mixed["source"]) == {"blend"}
