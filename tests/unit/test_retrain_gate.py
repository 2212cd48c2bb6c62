"""The retraining gate's decision and its held-out window, and the run tree's text, as pure logic."""

from typing import Any

import pandas as pd
import pytest

from pipelines.config import PipelineSettings
from pipelines.retrain import _decide, _holdout, fingerprint
from pipelines.run_tree import RunNode, tree_lines

pytestmark = pytest.mark.unit


def decide(**overrides: Any) -> tuple[bool, str]:
    args: dict[str, Any] = {
        "passed": True,
        "check_reason": "0.0% quarantined",
        "champion": "1",
        "challenger": "2",
        "rolled_back": None,
        "min_fresh_days": 1.0,
        "metric": "ndcg_at_10",
        "margin": 0.125,
        "challenger_metrics": {"ndcg_at_10": 0.75},
        "champion_metrics": {"ndcg_at_10": 0.5, "leaky": 0.0},
    }
    return _decide(**{**args, **overrides})


def test_the_gate_promotes_only_a_clear_gain_on_a_fair_comparison() -> None:
    promoted, reason = decide()
    assert promoted and reason == (
        "better by at least the margin 0.125: ndcg_at_10 0.7500 (version 2) vs 0.5000 (champion 1), +0.2500"
    )
    assert decide(margin=0.25)[0]  # exactly the margin is enough
    promoted, reason = decide(margin=0.375)
    assert not promoted and reason.startswith("not better by the margin 0.375")
    assert not decide(challenger_metrics={"ndcg_at_10": 0.25})[0]
    blocked = decide(passed=False, check_reason="9.0% quarantined", margin=-1.0)
    assert blocked == (False, "data check failed: 9.0% quarantined")
    leaky = decide(champion_metrics={"ndcg_at_10": 0.1, "leaky": 1.0})
    assert not leaky[0] and leaky[1].startswith("no fresh held-out window")
    rolled = decide(rolled_back="2026-12-01T00:00:00+00:00")
    assert not rolled[0] and "fitrec model promote 2" in rolled[1]
    assert decide(champion=None, champion_metrics={}) == (True, "no champion to beat: version 2 serves")
    assert not decide(champion="2")[0] and "already the champion" in decide(champion="2")[1]
    assert not decide(champion_metrics={})[0]  # nothing to compare with


def test_the_held_out_window_starts_after_the_champions_training_data() -> None:
    settings = PipelineSettings(FITREC_PIPELINE_MIN_FRESH_HOLDOUT_DAYS=1.0)
    start, end = pd.Timestamp("2026-11-01", tz="UTC"), pd.Timestamp("2026-11-30", tz="UTC")
    assert _holdout(settings, end, start, None) == 0.0  # no champion: training's default split
    assert _holdout(settings, end, start, "2026-11-22T00:00:00+00:00") == pytest.approx(8 - 1 / 1440)
    assert _holdout(settings, end, start, "2026-11-22T00:00:00") == pytest.approx(8 - 1 / 1440)  # naive = UTC
    assert _holdout(settings, end, start, "2026-11-29T12:00:00+00:00") == 0.0  # under a day: not fresh
    assert _holdout(settings, end, start, "2026-11-05T00:00:00+00:00") == pytest.approx(14.5)  # at most half


def test_fingerprints_follow_the_inputs_only() -> None:
    assert fingerprint("train", {"a": 1, "b": [1, 2]}) == fingerprint("train", {"b": [1, 2], "a": 1})
    assert fingerprint("train", {"a": 1}) != fingerprint("train", {"a": 2})
    assert fingerprint("train", {"a": 1}) != fingerprint("evaluate", {"a": 1})


def test_the_tree_shows_nesting_status_duration_reuse_and_outcome() -> None:
    def node(name: str, *children: RunNode, reused: str | None = None, outcome: str | None = None) -> RunNode:
        return RunNode(f"id-{name}", name, "FINISHED", 1.5, reused, outcome, children)

    tree = node("pipeline", node("validate", reused="id-old"), node("train", node("ranker")), outcome="kept")
    assert tree_lines(tree) == [
        "pipeline [finished, 1.5 s] kept id-pipeline",
        "├─ validate [finished, 1.5 s, reused id-old] id-validate",
        "└─ train [finished, 1.5 s] id-train",
        "   └─ ranker [finished, 1.5 s] id-ranker",
    ]
