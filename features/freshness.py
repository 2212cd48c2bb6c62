"""Feature freshness: how old the newest value each view serves online is."""

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from features.offline import newest_stamp
from features.schema import FEATURE_EPOCH

if TYPE_CHECKING:
    from feast import FeatureStore


def feature_freshness(store: "FeatureStore", *, now: datetime | None = None) -> dict[str, float]:
    """Seconds since the newest materialized value of each feature view (math.inf: never materialized).

    The newest value is the newest row of the view's offline table (parquet or
    PostgreSQL) that the last materialization reached. Static views (all rows at
    FEATURE_EPOCH, the catalogue) count from that materialization instead.
    Pushes can only make a view fresher than reported.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    ages: dict[str, float] = {}
    for view in store.list_feature_views():
        until = view.most_recent_end_time
        if until is None:
            ages[view.name] = math.inf
            continue
        until = until if until.tzinfo else until.replace(tzinfo=UTC)
        newest = newest_stamp(store, view.batch_source, until) if view.batch_source is not None else None
        if newest is None or newest <= FEATURE_EPOCH:
            newest = until
        ages[view.name] = max(0.0, (now - newest).total_seconds())
    return ages
