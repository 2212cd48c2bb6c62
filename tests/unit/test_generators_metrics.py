"""Top-k metrics against hand-computed values, the per-user splits and the benchmark's validation carves."""

import math

import numpy as np
import pandas as pd
import pytest

from training.benchmark import ScoreMatrixNDCG, validation_carves, validation_cutoff
from training.evaluate import ndcg_per_group
from training.interactions import Protocol, split_per_user
from training.ranking_metrics import per_user_metrics, topk_metrics

pytestmark = pytest.mark.unit


def recs(user: str, items: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"user_id": user, "item_id": items, "rank": range(1, len(items) + 1)})


def test_metrics_of_one_user_match_hand_computed_values() -> None:
    # Hits at ranks 1 and 3 of k=3; three relevant items (one never recommended).
    got = per_user_metrics(recs("u", ["a", "x", "b"]), pd.DataFrame({"user_id": "u", "item_id": ["a", "b", "c"]}), k=3)
    row = got.loc["u"]
    dcg = 1 + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert row["ndcg"] == pytest.approx(dcg / idcg)
    assert row["precision"] == pytest.approx(2 / 3)
    assert row["recall"] == pytest.approx(2 / 3)
    assert row["ap"] == pytest.approx((1 / 1 + 2 / 3) / 3)


def test_ideal_is_capped_at_k_and_users_without_recommendations_score_zero() -> None:
    test = pd.DataFrame({"user_id": ["u"] * 5 + ["v"], "item_id": ["a", "b", "c", "d", "e", "z"]})
    metrics = topk_metrics(recs("u", ["a", "b"]), test, k=2, n_items=10)
    # u: both hits, IDCG over min(2, 5) = 2 positions -> NDCG 1, AP 1; v: nothing recommended -> 0.
    assert metrics["ndcg@2"] == pytest.approx(0.5)
    assert metrics["map@2"] == pytest.approx(0.5)
    assert metrics["recall@2"] == pytest.approx((2 / 5 + 0) / 2)
    assert metrics["precision@2"] == pytest.approx(0.5)
    assert metrics["coverage"] == pytest.approx(0.2)


def test_ndcg_agrees_with_the_scored_group_ndcg_when_every_relevant_item_is_listed() -> None:
    items = ["a", "b", "c", "d", "e"]
    relevant = {"b", "e"}
    ours = per_user_metrics(recs("u", items), pd.DataFrame({"user_id": "u", "item_id": sorted(relevant)}), k=5)
    labels = [1 if i in relevant else 0 for i in items]
    theirs = ndcg_per_group(["u"] * 5, labels, [5, 4, 3, 2, 1], k=5)
    assert ours.loc["u", "ndcg"] == pytest.approx(theirs["u"])


def test_splits_are_per_user_and_disjoint() -> None:
    frame = pd.DataFrame(
        {"user_id": ["u"] * 8 + ["v"] * 4 + ["w"], "item_id": [str(i) for i in range(13)], "timestamp": range(13)}
    )
    train, test = split_per_user(frame, Protocol.parse("random:0.75"), seed=1)
    assert train.groupby("user_id").size().to_dict() == {"u": 6, "v": 3, "w": 1}
    assert train.merge(test, on=["user_id", "item_id"]).empty and len(train) + len(test) == 13
    train, test = split_per_user(frame, Protocol.parse("time:0.5"), seed=1)
    assert set(test["item_id"]) == {"4", "5", "6", "7", "10", "11"}
    _, test = split_per_user(frame, Protocol.parse("leave-last-out"), seed=1)
    assert set(test["item_id"]) == {"7", "11"}
    with pytest.raises(ValueError):
        Protocol.parse("random:1.5")


def test_ndcg_of_a_score_matrix_agrees_with_the_top_k_metrics() -> None:
    rng = np.random.default_rng(0)
    users, items = [f"u{i}" for i in range(30)], np.array([f"i{j}" for j in range(40)], dtype=object)
    scores = rng.normal(size=(30, 40))
    scores[rng.random((30, 40)) < 0.1] = -np.inf  # seen items
    truth = pd.DataFrame({"user_id": rng.choice(users, 200), "item_id": rng.choice([*items, "outside"], 200)})
    order = np.argsort(-scores, axis=1)[:, :5]
    recs = pd.DataFrame(
        {"user_id": np.repeat(users, 5), "item_id": items[order].ravel(), "rank": np.tile(np.arange(1, 6), 30)}
    )
    recs = recs[np.isfinite(np.take_along_axis(scores, order, axis=1).ravel())]
    expected = topk_metrics(recs, truth, k=5)["ndcg@5"]
    assert ScoreMatrixNDCG(users, items, truth, 5)(scores) == pytest.approx(expected)


def test_validation_carves_hold_out_half_the_test_share_and_the_cutoff_follows() -> None:
    frame = pd.DataFrame({"user_id": ["u"] * 80 + ["v"] * 40, "item_id": [str(i) for i in range(120)]})
    frame["timestamp"] = range(120)
    carves = validation_carves(frame, Protocol.parse("random:0.75"), seed=1)
    assert len(carves) == 2 and not carves[0][1].equals(carves[1][1])
    assert [len(v) for _, v in carves] == [15, 15]  # 12.5 % of each user
    ((history, validation),) = validation_carves(frame, Protocol.parse("time:0.8"), seed=1)
    assert len(validation) == 12  # the newest 10 % of each user
    newest_history = history.groupby("user_id")["timestamp"].max()
    assert (validation.groupby("user_id")["timestamp"].min() > newest_history).all()
    assert validation_cutoff(Protocol.parse("random:0.75"), 10) == 20
    assert validation_cutoff(Protocol.parse("leave-last-out"), 10) == 10
