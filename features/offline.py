"""The offline feature tables, where Feast's offline store reads them: parquet files or PostgreSQL tables.

Embedded: `offline/features/<table>.parquet` under the data folder (Feast's file
offline store). Production: `fitrec_features.<table>` in the platform's
PostgreSQL (Feast's PostgreSQL offline store, so point-in-time joins run in the
database). A table is always replaced whole and atomically: readers see the
old rows or the new ones, never half.
"""

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from features.postgres import copy_frame, pg_type, quoted, read_frame, sqlalchemy_url
from features.schema import ENTITY_KEYS, TABLES, TIMESTAMP
from features.sources import FEATURE_SCHEMA, table_path

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.data_source import DataSource

UTC_DATETIME = pl.Datetime("us", "UTC")


def write_feature_tables(tables: dict[str, pl.DataFrame], *, data_dir: Path, offline_url: str | None = None) -> None:
    """Each table to its parquet file (offline_url None) or to its PostgreSQL table (offline_url PostgreSQL)."""
    if offline_url:
        _write_postgres(tables, offline_url)
        return
    for name, frame in tables.items():
        path = Path(data_dir) / table_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".parquet.tmp")
        frame.write_parquet(tmp)
        tmp.replace(path)


def _write_postgres(tables: dict[str, pl.DataFrame], url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(sqlalchemy_url(url))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{FEATURE_SCHEMA}"')
        for name, frame in tables.items():
            key = ENTITY_KEYS[TABLES[name][0]]
            columns = ", ".join(f'"{c}" {pg_type(t)}' for c, t in frame.schema.items())
            table = quoted(FEATURE_SCHEMA, name)
            # DDL is transactional in PostgreSQL: readers keep the old table until this commits.
            with engine.begin() as conn:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
                conn.exec_driver_sql(f"CREATE TABLE {table} ({columns})")
                copy_frame(conn, table, frame)
                conn.exec_driver_sql(f'CREATE INDEX ON {table} ("{key}", "{TIMESTAMP}")')
                conn.exec_driver_sql(f'CREATE INDEX ON {table} ("{TIMESTAMP}")')
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql(f"ANALYZE {table}")
    finally:
        engine.dispose()


def read_source(store: "FeatureStore", source: "DataSource", columns: list[str]) -> pl.DataFrame:
    """`columns` of a registered batch source (timestamps as UTC), whichever offline store holds it."""
    from feast import FileSource

    if isinstance(source, FileSource):
        repo = store.config.repo_path
        path = Path(str(repo)) / source.path if repo else Path(source.path)
        frame = pl.read_parquet(path, columns=columns)
    else:
        from feast.infra.utils.postgres.connection_utils import _get_conn

        _needs_postgres(store, source)
        schema = _source_schema(store, source, columns)
        select = ", ".join(f'"{c}"' for c in columns)
        with _get_conn(store.config.offline_store) as conn:
            frame = read_frame(conn, f"SELECT {select} FROM {source.get_table_query_string()}", schema)  # type: ignore[attr-defined]
    if TIMESTAMP in frame.columns:
        frame = frame.with_columns(pl.col(TIMESTAMP).cast(UTC_DATETIME))
    return frame


def _source_schema(store: "FeatureStore", source: "DataSource", columns: list[str]) -> dict[str, Any]:
    from features.schema import INT_COLUMNS, STRING_COLUMNS

    keys = set(ENTITY_KEYS.values())
    schema: dict[str, Any] = {}
    for c in columns:
        if c == TIMESTAMP:
            schema[c] = UTC_DATETIME
        elif c in keys or c in STRING_COLUMNS:
            schema[c] = pl.String()
        elif c in INT_COLUMNS:
            schema[c] = pl.Int64()
        else:
            schema[c] = pl.Float64()
    return schema


def newest_stamp(store: "FeatureStore", source: "DataSource", until: datetime) -> datetime | None:
    """The newest row timestamp of a batch source at or before `until` (None: no such row)."""
    from feast import FileSource

    if isinstance(source, FileSource):
        repo = store.config.repo_path
        path = Path(str(repo)) / source.path if repo else Path(source.path)
        if not path.exists():
            return None
        stamps = pl.scan_parquet(path).select(pl.col(TIMESTAMP).cast(UTC_DATETIME))
        newest = stamps.filter(pl.col(TIMESTAMP) <= until).select(pl.col(TIMESTAMP).max()).collect().item()
    else:
        from feast.infra.utils.postgres.connection_utils import _get_conn

        _needs_postgres(store, source)
        query = f'SELECT max("{TIMESTAMP}") FROM {source.get_table_query_string()} WHERE "{TIMESTAMP}" <= %s'  # type: ignore[attr-defined]
        with _get_conn(store.config.offline_store) as conn:
            newest = read_frame(conn, query, {"max": UTC_DATETIME}, (until,)).item()
    return newest if isinstance(newest, datetime) else None


def _needs_postgres(store: "FeatureStore", source: "DataSource") -> None:
    from features.store import offline_backend

    if offline_backend(store) != "postgres":
        raise ValueError(
            f"{source.name} lives in PostgreSQL: open the store with offline_url=<the platform's PostgreSQL URL>"
        )
