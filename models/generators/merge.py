"""Merge several sources' candidates into one row per (user, item), keeping each source's score and rank."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from models.generators.base import ScoringGenerator


def merge_candidates(frames: Sequence[pd.DataFrame], *, fill_from: Sequence[ScoringGenerator] = ()) -> pd.DataFrame:
    """`user_id, item_id, <source>_score, <source>_rank, ..., n_sources` for every pair any source retrieved.

    A source that did not retrieve a pair leaves its rank nan (it ranked the item below its cut-off); its
    score is nan too unless the source is in `fill_from`, which scores every merged pair.
    """
    rows = pd.concat([f for f in frames if len(f)], ignore_index=True)
    if rows.empty:
        return pd.DataFrame(columns=["user_id", "item_id", "n_sources"])
    wide = rows.pivot_table(index=["user_id", "item_id"], columns="source", values=["score", "rank"], aggfunc="first")
    wide.columns = [f"{source}_{value}" for value, source in wide.columns]
    wide = wide.reset_index()
    wide["n_sources"] = wide.filter(like="_rank").notna().sum(axis=1)
    for generator in fill_from:
        wide[f"{generator.name}_score"] = generator.score_pairs(wide["user_id"].tolist(), wide["item_id"].tolist())
    sources = sorted(rows["source"].unique())
    ordered = [c for s in sources for c in (f"{s}_score", f"{s}_rank")]
    extra = [c for c in wide.columns if c.endswith("_score") and c not in ordered]
    return wide[["user_id", "item_id", *ordered, *extra, "n_sources"]].astype(
        {c: np.float64 for c in [*ordered, *extra]}
    )
