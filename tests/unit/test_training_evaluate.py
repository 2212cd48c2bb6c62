"""NDCG@k against hand-computed values, and the baselines."""

import math

import numpy as np
import pandas as pd
import pytest

from training.baselines import oracle_scores, popularity_scores
from training.evaluate import compare_rankers, evaluate_ranking, mean_ndcg, ndcg_per_group


def test_ndcg_of_one_group_matches_the_hand_computed_value() -> None:
    # Scored order: labels 0, 3, 1 -> DCG = 0/log2(2) + 7/log2(3) + 1/log2(4)
    # Ideal order:  labels 3, 1, 0 -> IDCG = 7/log2(2) + 1/log2(3)
    labels = [3, 0, 1]
    scores = [0.5, 0.9, 0.1]
    got = ndcg_per_group(["g"] * 3, labels, scores)
    dcg = 7 / math.log2(3) + 1 / math.log2(4)
    idcg = 7 + 1 / math.log2(3)
    assert got["g"] == pytest.approx(dcg / idcg)
    assert got["g"] == pytest.approx(0.6443, abs=1e-4)


def test_perfect_and_reversed_orders() -> None:
    labels = [2, 1, 0]
    assert ndcg_per_group(["g"] * 3, labels, [3, 2, 1])["g"] == pytest.approx(1.0)
    reversed_ = ndcg_per_group(["g"] * 3, labels, [1, 2, 3])["g"]
    # Reversed: labels 0, 1, 2 -> DCG = 1/log2(3) + 3/log2(4); IDCG = 3 + 1/log2(3)
    assert reversed_ == pytest.approx((1 / math.log2(3) + 3 / 2) / (3 + 1 / math.log2(3)))


def test_only_the_top_k_counts() -> None:
    # The only positive at rank 3 with k=2 contributes nothing.
    assert ndcg_per_group(["g"] * 3, [0, 0, 1], [3, 2, 1], k=2)["g"] == 0.0
    assert ndcg_per_group(["g"] * 3, [0, 0, 1], [3, 2, 1], k=3)["g"] == pytest.approx(0.5)


def test_groups_without_a_positive_are_excluded_from_the_mean() -> None:
    frame = pd.DataFrame(
        {
            "request_id": ["a", "a", "b", "b", "c", "c"],
            "label": [1, 0, 0, 0, 0, 1],
        }
    )
    scores = np.array([2.0, 1.0, 5.0, 4.0, 2.0, 1.0])  # a perfect, c: positive second
    per_group = ndcg_per_group(frame.request_id, frame.label, scores)
    assert list(per_group.index) == ["a", "c"]
    assert mean_ndcg(frame, scores) == pytest.approx((1.0 + 1 / math.log2(3)) / 2)


def test_interleaved_group_rows_are_grouped_by_id_not_by_adjacency() -> None:
    groups = ["a", "b", "a", "b"]
    per_group = ndcg_per_group(groups, [1, 0, 0, 1], [1.0, 2.0, 2.0, 1.0])
    assert per_group["a"] == pytest.approx(1 / math.log2(3))
    assert per_group["b"] == pytest.approx(1 / math.log2(3))


def test_ties_are_broken_by_a_seeded_order_not_by_row_order() -> None:
    # 200 groups where the positive is always the first row and every score ties:
    # breaking ties by row order would score a perfect 1.0.
    frame = pd.DataFrame({"request_id": np.repeat(np.arange(200), 5), "label": np.tile([1, 0, 0, 0, 0], 200)})
    value = mean_ndcg(frame, np.zeros(len(frame)))
    assert 0.4 < value < 0.8
    assert mean_ndcg(frame, np.zeros(len(frame)), seed=3) == mean_ndcg(frame, np.zeros(len(frame)), seed=3)


def test_compare_rankers_and_evaluate_with_baselines_and_oracle() -> None:
    frame = pd.DataFrame(
        {
            "request_id": ["r1"] * 3 + ["r2"] * 3,
            "user_id": ["u1"] * 3 + ["u2"] * 3,
            "item_id": ["x", "y", "z", "x", "y", "z"],
            "label": [0, 3, 0, 1, 0, 0],
            "item_pop": [10.0, 1.0, np.nan, 10.0, 1.0, np.nan],
        }
    )
    truth = {"u1": {"x": 0.1, "y": 0.9, "z": 0.0}, "u2": {"x": 0.8, "y": 0.2, "z": 0.1}}
    calls: list[tuple[str, list[str]]] = []

    def oracle(user_id: str, item_ids: list[str]) -> list[float]:
        calls.append((user_id, list(item_ids)))
        return [truth[user_id][i] for i in item_ids]

    model = np.array([0.0, 1.0, 0.5, 0.2, 0.3, 0.1])  # r1 perfect, r2 positive second
    metrics = evaluate_ranking(frame, model_scores=model, popularity_column="item_pop", oracle=oracle)

    assert sorted(calls) == [("u1", ["x", "y", "z"]), ("u2", ["x", "y", "z"])]
    assert metrics["oracle_ndcg@10"] == pytest.approx(1.0)
    assert metrics["ndcg@10"] == metrics["model_ndcg@10"] == pytest.approx((1 + 1 / math.log2(3)) / 2)
    # Popularity puts x first: wrong for r1 (positive y second), right for r2.
    assert metrics["popularity_ndcg@10"] == pytest.approx((7 / math.log2(3) / 7 + 1.0) / 2)
    assert metrics["model_vs_oracle"] == pytest.approx(metrics["ndcg@10"])
    assert 0 < metrics["random_ndcg@10"] <= 1
    assert metrics["eval_groups"] == 2 and metrics["eval_groups_with_positive"] == 2

    only = compare_rankers(frame, scores={"pop": popularity_scores(frame, column="item_pop")})
    assert only["pop_ndcg@10"] == metrics["popularity_ndcg@10"] and "ndcg@10" not in only


def test_oracle_with_a_wrong_shape_is_refused() -> None:
    frame = pd.DataFrame({"request_id": ["r"] * 2, "user_id": ["u"] * 2, "item_id": ["a", "b"], "label": [1, 0]})
    with pytest.raises(ValueError, match="oracle returned"):
        oracle_scores(frame, oracle=lambda user, items: [1.0])


def test_slate_metrics_by_hand() -> None:
    from training.evaluate import slate_metrics

    # Group a: positives at ranks 2 (label 1) and 3 (label 3); group b: positive at rank 1; c: none.
    frame = pd.DataFrame(
        {
            "request_id": ["a"] * 3 + ["b"] * 2 + ["c"] * 2,
            "label": [0, 1, 3, 2, 0, 0, 0],
        }
    )
    scores = np.array([3.0, 2.0, 1.0, 5.0, 4.0, 1.0, 2.0])
    m = slate_metrics(frame, scores, k=10)
    dcg_a = 1 / np.log2(3) + 7 / np.log2(4)
    idcg_a = 7 + 1 / np.log2(3)
    assert m["ndcg@10"] == pytest.approx((dcg_a / idcg_a + 1.0) / 2)
    # AP of a: hits at ranks 2 and 3 -> (1/2 + 2/3) / 2; of b: 1. MRR: (1/2 + 1) / 2.
    assert m["map@10"] == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1.0) / 2)
    assert m["mrr"] == pytest.approx((1 / 2 + 1.0) / 2)
    assert slate_metrics(frame, scores, k=1)["map@1"] == pytest.approx((0.0 + 1.0) / 2)


def test_topk_report_by_hand() -> None:
    from training.evaluate import topk_report

    recs = pd.DataFrame(
        {"user_id": ["u1"] * 3 + ["u2"] * 3, "item_id": ["a", "b", "c", "a", "d", "e"], "rank": [1, 2, 3] * 2}
    )
    relevant = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u3"], "item_id": ["b", "z", "e", "a"]})
    counts = pd.Series({"a": 6.0, "b": 2.0})  # training uses; c, d, e never used
    m = topk_report(recs, relevant, k=3, n_items=10, item_counts=counts)
    assert m["users"] == 3  # u3 has no list and counts as 0
    assert m["recall@3"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert m["mrr"] == pytest.approx((1 / 2 + 1 / 3 + 0) / 3)
    assert m["ndcg@3"] == pytest.approx(((1 / np.log2(3)) / (1 + 1 / np.log2(3)) + (1 / np.log2(4)) / 1) / 3)
    assert m["coverage"] == pytest.approx(5 / 10)
    p = {"a": 7 / 18, "b": 3 / 18, "c": 1 / 18, "d": 1 / 18, "e": 1 / 18}  # (count + 1) / (8 + 10)
    expected = np.mean([-np.log2(p[i]) for i in recs["item_id"]])
    assert m["novelty"] == pytest.approx(expected)


def test_baseline_lists_and_calibration() -> None:
    from training.baselines import oracle_recs, popularity_recs, random_recs
    from training.evaluate import calibration

    counts = pd.Series({"b": 5.0, "a": 5.0, "c": 1.0})
    pop = popularity_recs(["u1", "u2"], counts, k=2)
    assert pop["item_id"].tolist() == ["a", "b", "a", "b"] and pop["rank"].tolist() == [1, 2, 1, 2]
    rand = random_recs(["u1", "u2"], list("abcdef"), k=4, seed=3)
    assert len(rand) == 8 and rand.groupby("user_id")["item_id"].nunique().tolist() == [4, 4]
    oracle = oracle_recs(["u1"], list("abc"), oracle=lambda user, items: [ord(i) for i in items], k=2)
    assert oracle["item_id"].tolist() == ["c", "b"]
    frame = pd.DataFrame({"label": [0, 0, 1, 3]})
    table = calibration(frame, np.array([0.1, 0.2, 0.3, 0.4]), bins=2)
    assert table["mean_label"].tolist() == [0.0, 2.0] and table["positive_rate"].tolist() == [0.0, 1.0]
