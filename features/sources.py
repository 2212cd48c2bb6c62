"""Feast data sources: the feature tables the build writes, and push sources for fresh rows.

The same tables live in parquet files (embedded: Feast's file offline store) or
in PostgreSQL (production: Feast's PostgreSQL offline store); which one is
chosen from the store's offline configuration, never in code paths of its own.
File paths are relative to the store's `repo_path` (the data folder), so the
same registry works wherever the data folder lives.
"""

from typing import TYPE_CHECKING, Literal

from features.schema import TABLES, TIMESTAMP

if TYPE_CHECKING:
    from feast import PushSource
    from feast.data_source import DataSource

OFFLINE_SUBDIR = "offline/features"
# The PostgreSQL schema holding the feature tables (and Feast's temporary entity tables).
FEATURE_SCHEMA = "fitrec_features"
# Tables that events refresh online between batch builds (see features.push): the user tables
# per user, the catalogue per newly published item.
PUSHED_TABLES = (
    "user_profile",
    "user_workout_stats",
    "user_health",
    "user_engagement",
    "user_recent_items",
    "item_catalogue",
)

OfflineBackend = Literal["file", "postgres"]


def table_path(table: str) -> str:
    """Where a feature table lives, relative to the data folder (file backend)."""
    return f"{OFFLINE_SUBDIR}/{table}.parquet"


def table_name(table: str) -> str:
    """Where a feature table lives in PostgreSQL (postgres backend), schema-qualified and quoted."""
    return f'"{FEATURE_SCHEMA}"."{table}"'


def push_source_name(table: str) -> str:
    return f"{table}_push"


def batch_sources(backend: OfflineBackend = "file") -> dict[str, "DataSource"]:
    """One batch source per feature table, on the given offline backend."""
    if backend == "postgres":
        from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource

        return {t: PostgreSQLSource(name=f"{t}_source", table=table_name(t), timestamp_field=TIMESTAMP) for t in TABLES}
    from feast import FileSource

    return {t: FileSource(name=f"{t}_source", path=table_path(t), timestamp_field=TIMESTAMP) for t in TABLES}


def push_sources(batch: dict[str, "DataSource"]) -> dict[str, "PushSource"]:
    from feast import PushSource

    return {t: PushSource(name=push_source_name(t), batch_source=batch[t]) for t in PUSHED_TABLES}
