"""Feast feature views, one per feature table."""

from datetime import timedelta

from feast import FeatureView, Field
from feast.types import Float64, Int64, String

from features.entities import item, user
from features.schema import INT_COLUMNS, STRING_COLUMNS, TABLES
from features.sources import FILE_SOURCES, PUSH_SOURCES

# Rows stay valid until replaced: windowed tables write a final all-zero row when
# an entity goes quiet, and the catalogue is stamped once at FEATURE_EPOCH.
TTL = timedelta(days=36500)
_ENTITIES = {"user": user, "item": item}


def _dtype(column: str):  # type: ignore[no-untyped-def]
    return String if column in STRING_COLUMNS else Int64 if column in INT_COLUMNS else Float64


def _view(table: str) -> FeatureView:
    entity, columns = TABLES[table]
    return FeatureView(
        name=table,
        entities=[_ENTITIES[entity]],
        ttl=TTL,
        schema=[Field(name=c, dtype=_dtype(c)) for c in columns],
        source=PUSH_SOURCES.get(table, FILE_SOURCES[table]),
        online=True,
    )


user_profile = _view("user_profile")
user_workout_stats = _view("user_workout_stats")
user_health = _view("user_health")
user_engagement = _view("user_engagement")
item_stats = _view("item_stats")
item_catalogue = _view("item_catalogue")

FEATURE_VIEWS: dict[str, FeatureView] = {
    fv.name: fv for fv in (user_profile, user_workout_stats, user_health, user_engagement, item_stats, item_catalogue)
}
