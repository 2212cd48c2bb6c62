"""Feast feature views, one per feature table."""

from datetime import timedelta
from typing import TYPE_CHECKING

from features.schema import INT_COLUMNS, STRING_COLUMNS, TABLES
from features.sources import OfflineBackend, batch_sources, push_sources

if TYPE_CHECKING:
    from feast import FeatureView

# Rows stay valid until replaced: windowed tables write a final all-zero row when
# an entity goes quiet, and the catalogue is stamped once at FEATURE_EPOCH.
TTL = timedelta(days=36500)


def _dtype(column: str):  # type: ignore[no-untyped-def]
    from feast.types import Float64, Int64, String

    return String if column in STRING_COLUMNS else Int64 if column in INT_COLUMNS else Float64


def feature_views(backend: OfflineBackend = "file") -> dict[str, "FeatureView"]:
    """Every feature view, reading its table from the given offline backend (pushed tables through a push source)."""
    from feast import FeatureView, Field

    from features.entities import item, user

    entities = {"user": user, "item": item}
    batch = batch_sources(backend)
    pushed = push_sources(batch)
    return {
        table: FeatureView(
            name=table,
            entities=[entities[entity]],
            ttl=TTL,
            schema=[Field(name=c, dtype=_dtype(c)) for c in columns],
            source=pushed.get(table, batch[table]),
            online=True,
        )
        for table, (entity, columns) in TABLES.items()
    }
