"""Reading ranking features: point-in-time training sets and online rows, with the same columns and fills."""

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.on_demand import ITEM_INPUTS, USER_INPUTS, ranking_fit
from features.schema import FILLS, FIT_FEATURES, TABLES, TIMESTAMP
from features.services import RANKING_FEATURES, RANKING_SERVICE, RANKING_VIEW_FEATURES

if TYPE_CHECKING:
    from feast import FeatureStore

_ROW = "__fitrec_row"


def fill_features(frame: pd.DataFrame) -> pd.DataFrame:
    """RANKING_FEATURES of `frame`, missing values filled with FILLS, as float64, in order."""
    return pd.DataFrame(
        {
            c: pd.to_numeric(frame[c], errors="coerce").astype(np.float64).fillna(float(FILLS[c]))
            for c in RANKING_FEATURES
        },
        index=frame.index,
    )


def historical_features(store: "FeatureStore", entity_df: pd.DataFrame) -> pd.DataFrame:
    """`entity_df` (user_id, item_id, event_timestamp, any passthrough columns) + RANKING_FEATURES.

    Each row gets the features as they were at its `event_timestamp` (Feast's
    point-in-time join over the ranking_v1 service); row order and passthrough
    columns are kept as given.
    """
    missing = {"user_id", "item_id", TIMESTAMP} - set(entity_df.columns)
    if missing:
        raise ValueError(f"entity_df lacks {sorted(missing)}")
    base = entity_df.reset_index(drop=True)
    if base.empty:
        return base.assign(**{c: pd.Series(dtype=np.float64) for c in RANKING_FEATURES})
    query = base[["user_id", "item_id", TIMESTAMP]].copy()
    stamps = pd.to_datetime(query[TIMESTAMP], utc=True)
    # Feast's file offline store keeps one row per (first view's join keys, timestamp):
    # rows sharing a timestamp (a slate) would collapse into one. Moving each
    # such row a few microseconds *earlier* makes them distinct and never lets a
    # later value in.
    query[TIMESTAMP] = stamps - pd.to_timedelta(stamps.groupby(stamps).cumcount(), unit="us")
    query[_ROW] = np.arange(len(query))
    service = store.get_feature_service(RANKING_SERVICE)
    joined = store.get_historical_features(entity_df=query, features=service).to_df()
    joined = joined.sort_values(_ROW).set_index(_ROW).reindex(np.arange(len(query)))
    features = fill_features(joined)
    features.index = base.index
    return pd.concat([base, features], axis=1)


@lru_cache(maxsize=1)
def _online_refs() -> tuple[list[str], list[str]]:
    """Feature references the online path reads: user side, item side."""
    owner = {c: table for table, (_, cols) in TABLES.items() for c in cols}
    view_cols = [c for cols in RANKING_VIEW_FEATURES.values() for c in cols]
    user_cols = dict.fromkeys([c for c in view_cols if TABLES[owner[c]][0] == "user"] + list(USER_INPUTS))
    item_cols = dict.fromkeys([c for c in view_cols if TABLES[owner[c]][0] == "item"] + list(ITEM_INPUTS))
    return [f"{owner[c]}:{c}" for c in user_cols], [f"{owner[c]}:{c}" for c in item_cols]


def online_rows(store: "FeatureStore", user_id: str, item_ids: Sequence[str]) -> pd.DataFrame:
    """Raw (unfilled) online values of every column the ranking features need, one row per item."""
    user_refs, item_refs = _online_refs()
    user = store.get_online_features(features=user_refs, entity_rows={"user_id": [user_id]}).to_dict()
    items = store.get_online_features(features=item_refs, entity_rows={"item_id": list(item_ids)}).to_dict()
    frame = pd.DataFrame(items, index=pd.Index(list(item_ids), name="item_id"))
    for ref in user_refs:
        col = ref.split(":", 1)[1]
        frame[col] = user[col][0]
    return frame


def online_features(store: "FeatureStore", user_id: str, item_ids: Sequence[str]) -> pd.DataFrame:
    """RANKING_FEATURES for one user and candidate items from the online store, indexed by item_id.

    The on-demand fits are computed here with `ranking_fit` (no Feast on-demand
    overhead); missing values get the same fills as `historical_features`.
    """
    if not item_ids:
        return pd.DataFrame(columns=list(RANKING_FEATURES), dtype=np.float64, index=pd.Index([], name="item_id"))
    rows = online_rows(store, user_id, item_ids)
    fits = ranking_fit(rows)
    for col in FIT_FEATURES:
        rows[col] = fits[col]
    return fill_features(rows)
