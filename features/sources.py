"""Feast data sources: parquet tables written by the feature build, push sources for fresh user rows.

Paths are relative to the store's `repo_path` (the data folder), so the same
registry works wherever the data folder lives.
"""

from feast import FileSource, PushSource

from features.schema import TABLES, TIMESTAMP

OFFLINE_SUBDIR = "offline/features"
# User tables that events refresh between batch builds (see features.push).
PUSHED_TABLES = ("user_workout_stats", "user_health", "user_engagement")


def table_path(table: str) -> str:
    """Where a feature table lives, relative to the data folder."""
    return f"{OFFLINE_SUBDIR}/{table}.parquet"


def push_source_name(table: str) -> str:
    return f"{table}_push"


FILE_SOURCES: dict[str, FileSource] = {
    table: FileSource(name=f"{table}_source", path=table_path(table), timestamp_field=TIMESTAMP) for table in TABLES
}
PUSH_SOURCES: dict[str, PushSource] = {
    table: PushSource(name=push_source_name(table), batch_source=FILE_SOURCES[table]) for table in PUSHED_TABLES
}
