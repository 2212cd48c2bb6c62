"""Feature freshness: how old the newest value each view serves online is."""

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.compute as pc
import pyarrow.parquet as pq
from feast import FileSource

from features.schema import FEATURE_EPOCH, TIMESTAMP

if TYPE_CHECKING:
    from feast import FeatureStore


def feature_freshness(store: "FeatureStore", *, now: datetime | None = None) -> dict[str, float]:
    """Seconds since the newest materialized value of each feature view (math.inf: never materialized).

    The newest value is the newest row of the view's offline table that the last
    materialization reached. Static views (all rows at FEATURE_EPOCH, the
    catalogue) count from that materialization instead. Pushes can only make a
    view fresher than reported.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    repo = Path(str(store.config.repo_path))
    ages: dict[str, float] = {}
    for view in store.list_feature_views():
        until = view.most_recent_end_time
        if until is None:
            ages[view.name] = math.inf
            continue
        until = until if until.tzinfo else until.replace(tzinfo=UTC)
        source = view.batch_source
        newest = _newest_stamp(repo / source.path, until) if isinstance(source, FileSource) else None
        if newest is None or newest <= FEATURE_EPOCH:
            newest = until
        ages[view.name] = max(0.0, (now - newest).total_seconds())
    return ages


def _newest_stamp(path: Path, until: datetime) -> datetime | None:
    if not path.exists():
        return None
    stamps = pq.read_table(path, columns=[TIMESTAMP]).column(TIMESTAMP)
    reached = stamps.filter(pc.less_equal(stamps, until))
    newest = pc.max(reached).as_py()
    if newest is None:
        return None
    return newest if newest.tzinfo else newest.replace(tzinfo=UTC)
