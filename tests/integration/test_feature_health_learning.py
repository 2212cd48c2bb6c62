"""Health-aware learning: the LightGBM ranker, trained on simulated events, serves lighter sessions to tired users.

Nothing in the features or the serving path says "serve lighter sessions when
recovery is low": the simulated users behave so (training.simulation), the
features carry their sleep, resting heart rate, training load and the items'
intensity, and the ranker has to learn the rest from engagement labels.
"""

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import polars as pl
import pytest

from features.retrieval import features_for_user, training_features
from features.schema import USER_HEALTH
from features.services import RANKING_FEATURES
from features.transforms import build_tables, events_frame, items_frame, latest_rows
from platform_api.catalogue.service import catalogue_items
from training.datasets import build_labels, split_by_time
from training.evaluate import evaluate_ranking
from training.ranker import TrainedRanker, train_ranker, with_positive_groups
from training.simulator import Simulation, simulate

END = datetime(2026, 3, 15, tzinfo=UTC)
USER_TABLES = ("user_profile", "user_workout_stats", "user_health", "user_engagement")


class Stack:
    def __init__(self) -> None:
        items = catalogue_items()
        self.sim: Simulation = simulate(items, users=600, days=35, seed=6, end=END)
        events = events_frame(self.sim.events)
        self.tables = build_tables(events, items_frame(i.as_row() for i in items), as_of=END)
        split = split_by_time(build_labels(events))
        self.parts = {
            name: training_features(self.tables, with_positive_groups(frame))
            for name, frame in (("train", split.train), ("valid", split.valid), ("test", split.test))
        }
        self.trained: TrainedRanker = train_ranker(
            self.parts["train"], self.parts["valid"], features=list(RANKING_FEATURES), categorical=[]
        )

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        t = self.trained
        return np.asarray(t.booster.predict(t.spec.encode(frame), num_iteration=t.best_iteration))


@pytest.fixture(scope="module")
def stack() -> Stack:
    return Stack()


def test_the_ranker_learns_the_simulated_population(stack: Stack) -> None:
    test = stack.parts["test"]
    m = evaluate_ranking(
        test, model_scores=stack.score(test), popularity_column="item_popularity_28d", oracle=stack.sim.utility
    )
    assert m["ndcg@10"] > m["popularity_ndcg@10"] + 0.05, m
    assert m["ndcg@10"] > 0.85 * m["oracle_ndcg@10"], m
    # The oracle knows each slate's day, hence the user's recovery: it ranks at least as well as the model.
    assert m["oracle_ndcg@10"] >= m["ndcg@10"], m


def test_the_same_user_gets_lighter_sessions_when_poorly_recovered(stack: Stack) -> None:
    health = stack.tables["user_health"].filter(pl.col("sleep_1d").is_not_null() & pl.col("sleep_7d_avg").is_not_null())
    health = health.sort("recovery_score")
    # Two real rows of the population: a poorly recovered evening (short sleep, raised resting HR) and a good one.
    tired = health.row(int(0.03 * health.height), named=True)
    rested = health.row(int(0.97 * health.height), named=True)
    assert tired["recovery_score"] < 0.3 < 0.9 < rested["recovery_score"]
    assert tired["sleep_delta_1d"] < 0 < rested["sleep_delta_1d"]
    assert tired["resting_hr_delta_1d"] > 0 > rested["resting_hr_delta_1d"]

    latest = {t: latest_rows(stack.tables[t], "user_id") for t in USER_TABLES}
    items = (
        latest_rows(stack.tables["item_stats"], "item_id")
        .join(stack.tables["item_catalogue"].drop("event_timestamp"), on="item_id", how="full", coalesce=True)
        .to_pandas()
        .set_index("item_id")
    )
    intensity = items["item_intensity"].to_numpy()
    gaps = []
    for user_id in latest["user_profile"]["user_id"].sort().to_list()[:60]:
        user: dict[str, object] = {}
        for frame in latest.values():
            row = frame.filter(pl.col("user_id") == user_id)
            if row.height:
                user.update(row.drop("user_id", "event_timestamp").row(0, named=True))
        top_intensity = []
        for evening in (tired, rested):
            # Everything about the user stays as it is; only the health features change.
            features = features_for_user({**user, **{c: evening[c] for c in USER_HEALTH}}, items)
            top_intensity.append(intensity[np.argsort(-stack.score(features), kind="stable")[:10]].mean())
        gaps.append(top_intensity[1] - top_intensity[0])
    gaps_ = np.array(gaps)
    lighter, harder = float(np.mean(gaps_ > 0)), float(np.mean(gaps_ < 0))
    # Measured: mean gap 0.05-0.1 of intensity, lighter for about 60% of users, harder for at most 2%.
    assert gaps_.mean() > 0.02, gaps
    assert lighter > harder + 0.3, (lighter, harder)
