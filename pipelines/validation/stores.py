"""Where validated events land: the offline event store and the quarantine, on files or in PostgreSQL.

One protocol, two implementations, chosen by the platform database's URL
(`open_event_store`), so the export, the feature build and training run one code path:

ParquetEventStore (embedded), under the data folder:
    offline/events/event_type=<type>/date=<occurred_at date, UTC>/part-<run>-<chunk>.parquet
        one event type's valid rows; envelope columns, `received_at`, the raw `properties`
        JSON and each property as a typed column (the partition keys live in the path);
    offline/events/_watermark.json
        the newest `received_at` exported;
    quarantine/events/<run>-<chunk>.parquet
        event_id, event_type, reasons (names of the failed expectations), raw (JSON),
        received_at, run_id.
    Files are written under a temporary name and renamed, so a reader never sees half a file.

PostgresEventStore (production), schema `fitrec_events` of the platform database:
    events_<type> (one table per event type, e.g. events_workout_completed)
        the same columns as the parquet files, `date` a column; primary key event_id,
        indexes on occurred_at, received_at and (user_id, occurred_at). One table per
        type because each type has its own typed property columns (one shared table
        would be mostly nulls); the date partitions of the files become an index on
        occurred_at, which serves the same range scans without a table per day;
    quarantine
        the quarantine's columns, reasons as jsonb;
    export_run
        one row per export run: its watermark and figures.
    A chunk's valid and quarantined rows commit in one transaction.

Reads return the same columns and dtypes from both (`event_schema`), which the
contract test holds them to.
"""

import json
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import polars as pl
from sqlalchemy import Engine

from features.postgres import copy_frame, is_postgres, quoted, read_frame
from pipelines.validation.contract import EVENT_TYPES, Kind, specs_of

EVENTS = "events"
TYPE_KEY, DATE_KEY = "event_type", "date"
EVENTS_SCHEMA = "fitrec_events"
UTC_DATETIME = pl.Datetime("us", "UTC")
_KIND_DTYPES: dict[Kind, pl.DataType] = {
    "int": pl.Int64(),
    "float": pl.Float64(),
    "str": pl.String(),
    "date": pl.Date(),
    "datetime": UTC_DATETIME,
    "list": pl.List(pl.String()),
    "bool": pl.Boolean(),
}
ENVELOPE_SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.String(),
    "user_id": pl.String(),
    "item_id": pl.String(),
    "occurred_at": UTC_DATETIME,
    "received_at": UTC_DATETIME,
    "properties": pl.String(),
}
# What the feature build and training read: every type's envelope, properties as JSON text.
EVENT_LOG_SCHEMA: dict[str, pl.DataType] = {"event_type": pl.String(), **ENVELOPE_SCHEMA}
QUARANTINE_COLUMNS: dict[str, pl.DataType] = {
    "event_id": pl.String(),
    "event_type": pl.String(),
    "reasons": pl.List(pl.String()),
    "raw": pl.String(),
    "received_at": UTC_DATETIME,
    "run_id": pl.String(),
}


def event_schema(event_type: str) -> dict[str, pl.DataType]:
    """The columns of one type's stored rows: envelope, typed properties, the `date` partition."""
    props = {s.name: _KIND_DTYPES[s.kind] for s in specs_of(event_type)}
    return {**ENVELOPE_SCHEMA, **props, DATE_KEY: pl.Date()}


def _conform(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """`frame` with exactly `schema`'s columns, in order (absent ones null)."""
    return frame.select(
        pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype=dtype).alias(name)
        for name, dtype in schema.items()
    )


def _stored_rows(event_type: str, frame: pl.DataFrame) -> pl.DataFrame:
    dated = frame.with_columns(pl.col("occurred_at").dt.date().alias(DATE_KEY))
    return _conform(dated, event_schema(event_type))


class EventStore(Protocol):
    """The offline event store and its quarantine."""

    backend: str

    def write(
        self, by_type: dict[str, pl.DataFrame], quarantined: pl.DataFrame, *, part: str, run_id: str
    ) -> tuple[int, int]:
        """Store one validated chunk: each type's valid rows and the quarantined ones; returns both counts."""
        ...

    def read_events(self, event_type: str) -> pl.DataFrame:
        """One type's stored rows (`event_schema`), or an empty frame of that schema."""
        ...

    def read_log(self, event_types: Iterable[str], *, user_ids: Iterable[str] | None = None) -> pl.DataFrame:
        """The envelopes of these types (EVENT_LOG_SCHEMA), as the transforms and labels read them."""
        ...

    def read_quarantine(self) -> pl.DataFrame: ...

    def handled_ids(self, *, received_since: datetime | None = None) -> set[str]:
        """Ids already stored or quarantined (received at or after `received_since`, if given)."""
        ...

    def exported_ids(self, event_type: str, column: str) -> set[str]:
        """Distinct values of one column of a type's stored rows (users created, items made ready)."""
        ...

    def counts(self) -> dict[str, int]:
        """Stored rows per event type (types with none left out)."""
        ...

    def read_watermark(self) -> datetime | None: ...

    def save_watermark(self, watermark: datetime, *, run_id: str, summary: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def open_event_store(*, database_url: str | None, offline_dir: Path, quarantine_dir: Path) -> EventStore:
    """PostgreSQL tables when the platform database is PostgreSQL, parquet files under the data folder otherwise."""
    if is_postgres(database_url):
        from platform_api.db import make_engine

        assert database_url is not None
        return PostgresEventStore(make_engine(database_url), own_engine=True)
    return ParquetEventStore(offline_dir, quarantine_dir)


# --- parquet ----------------------------------------------------------------------------------------------------


def _write_atomic(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, path)


def events_root(offline_dir: Path) -> Path:
    return offline_dir / EVENTS


def type_dir(offline_dir: Path, event_type: str) -> Path:
    return events_root(offline_dir) / f"{TYPE_KEY}={event_type}"


class ParquetEventStore:
    backend = "parquet"

    def __init__(self, offline_dir: Path, quarantine_dir: Path) -> None:
        self.offline_dir = Path(offline_dir)
        self.quarantine_dir = Path(quarantine_dir)

    def _files(self, event_type: str) -> list[Path]:
        return sorted(type_dir(self.offline_dir, event_type).glob(f"{DATE_KEY}=*/*.parquet"))

    def _scan(self, event_type: str) -> pl.LazyFrame | None:
        path = type_dir(self.offline_dir, event_type)
        if not self._files(event_type):
            return None
        # The date partition is read from the path; the type is the folder itself.
        scan = pl.scan_parquet(path / "**" / "*.parquet", hive_partitioning=True)
        return scan.with_columns(pl.col(DATE_KEY).cast(pl.Date)) if DATE_KEY in scan.collect_schema() else scan

    def write(
        self, by_type: dict[str, pl.DataFrame], quarantined: pl.DataFrame, *, part: str, run_id: str
    ) -> tuple[int, int]:
        written = 0
        for event_type, frame in by_type.items():
            if frame.is_empty():
                continue
            rows = _stored_rows(event_type, frame)
            for (day,), day_rows in rows.partition_by(DATE_KEY, as_dict=True, include_key=False).items():
                path = type_dir(self.offline_dir, event_type) / f"{DATE_KEY}={day}" / f"part-{part}.parquet"
                _write_atomic(day_rows, path)
                written += day_rows.height
        held = 0
        if not quarantined.is_empty():
            frame = _conform(quarantined.with_columns(pl.lit(run_id).alias("run_id")), QUARANTINE_COLUMNS)
            _write_atomic(frame, self.quarantine_dir / EVENTS / f"{part}.parquet")
            held = frame.height
        return written, held

    def read_events(self, event_type: str) -> pl.DataFrame:
        scan = self._scan(event_type)
        schema = event_schema(event_type)
        return pl.DataFrame(schema=schema) if scan is None else _conform(scan.collect(), schema)

    def read_log(self, event_types: Iterable[str], *, user_ids: Iterable[str] | None = None) -> pl.DataFrame:
        users = None if user_ids is None else pl.Series(list(user_ids), dtype=pl.String)
        frames = []
        for event_type in dict.fromkeys(event_types):
            scan = self._scan(event_type)
            if scan is None:
                continue
            if users is not None:
                scan = scan.filter(pl.col("user_id").is_in(users))
            frames.append(
                scan.select(pl.lit(event_type).alias("event_type"), *ENVELOPE_SCHEMA).collect().cast(EVENT_LOG_SCHEMA)  # type: ignore[arg-type]
            )
        return pl.concat(frames) if frames else pl.DataFrame(schema=EVENT_LOG_SCHEMA)

    def read_quarantine(self) -> pl.DataFrame:
        files = sorted((self.quarantine_dir / EVENTS).glob("*.parquet"))
        if not files:
            return pl.DataFrame(schema=QUARANTINE_COLUMNS)
        return _conform(pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed"), QUARANTINE_COLUMNS)

    def _id_scans(self) -> Iterator[pl.LazyFrame]:
        for event_type in EVENT_TYPES:
            if self._files(event_type):
                yield pl.scan_parquet(type_dir(self.offline_dir, event_type) / "**" / "*.parquet")
        if any((self.quarantine_dir / EVENTS).glob("*.parquet")):
            yield pl.scan_parquet(self.quarantine_dir / EVENTS / "*.parquet")

    def handled_ids(self, *, received_since: datetime | None = None) -> set[str]:
        ids: set[str] = set()
        for scan in self._id_scans():
            if received_since is not None:
                scan = scan.filter(pl.col("received_at") >= received_since)
            ids.update(scan.select("event_id").collect()["event_id"].to_list())
        return ids

    def exported_ids(self, event_type: str, column: str) -> set[str]:
        if not self._files(event_type):
            return set()
        scan = pl.scan_parquet(type_dir(self.offline_dir, event_type) / "**" / "*.parquet")
        return set(scan.select(pl.col(column).drop_nulls().unique()).collect()[column].to_list())

    def counts(self) -> dict[str, int]:
        out = {}
        for event_type in EVENT_TYPES:
            if self._files(event_type):
                scan = pl.scan_parquet(type_dir(self.offline_dir, event_type) / "**" / "*.parquet")
                out[event_type] = int(scan.select(pl.len()).collect().item())
        return out

    def _watermark_path(self) -> Path:
        return events_root(self.offline_dir) / "_watermark.json"

    def read_watermark(self) -> datetime | None:
        path = self._watermark_path()
        if not path.exists():
            return None
        return datetime.fromisoformat(json.loads(path.read_text())["received_at"])

    def save_watermark(self, watermark: datetime, *, run_id: str, summary: dict[str, Any]) -> None:
        path = self._watermark_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"received_at": watermark.isoformat(), "run_id": run_id}))
        tmp.replace(path)

    def close(self) -> None:
        pass


# --- PostgreSQL -------------------------------------------------------------------------------------------------


def table_of(event_type: str) -> str:
    return "events_" + event_type.replace(".", "_")


class PostgresEventStore:
    backend = "postgresql"

    def __init__(self, engine: Engine, *, schema: str = EVENTS_SCHEMA, own_engine: bool = False) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError(f"PostgresEventStore needs a PostgreSQL engine, not {engine.dialect.name}")
        self.engine = engine
        self.schema = schema
        self._own_engine = own_engine
        self._ready = False

    def _table(self, name: str) -> str:
        return quoted(self.schema, name)

    def _ensure(self) -> None:
        """Create the schema and tables once per store; new contract properties become new columns."""
        if self._ready:
            return
        from features.postgres import pg_type

        with self.engine.begin() as conn:
            # Concurrent first runs: the advisory lock makes one create while the other waits.
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext('fitrec_events ddl'))")
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            for event_type in EVENT_TYPES:
                table = self._table(table_of(event_type))
                schema = event_schema(event_type)
                columns = ", ".join(
                    f'"{name}" {pg_type(dtype)}' + (" PRIMARY KEY" if name == "event_id" else "")
                    for name, dtype in schema.items()
                )
                conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {table} ({columns})")
                for name, dtype in schema.items():
                    conn.exec_driver_sql(f'ALTER TABLE {table} ADD COLUMN IF NOT EXISTS "{name}" {pg_type(dtype)}')
                for index in (("occurred_at",), ("received_at",), ("user_id", "occurred_at")):
                    cols = ", ".join(f'"{c}"' for c in index)
                    name = f"ix_{table_of(event_type)}_{'_'.join(index)}"
                    conn.exec_driver_sql(f'CREATE INDEX IF NOT EXISTS "{name}" ON {table} ({cols})')
            quarantine = self._table("quarantine")
            columns = ", ".join(f'"{n}" {pg_type(t)}' for n, t in QUARANTINE_COLUMNS.items())
            conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {quarantine} ({columns})")
            conn.exec_driver_sql(
                f'CREATE INDEX IF NOT EXISTS "ix_quarantine_received_at" ON {quarantine} (received_at)'
            )
            conn.exec_driver_sql(
                f"CREATE TABLE IF NOT EXISTS {self._table('export_run')} ("
                "run_id text PRIMARY KEY, watermark timestamptz NOT NULL, finished_at timestamptz NOT NULL, "
                "summary jsonb NOT NULL)"
            )
        self._ready = True

    def write(
        self, by_type: dict[str, pl.DataFrame], quarantined: pl.DataFrame, *, part: str, run_id: str
    ) -> tuple[int, int]:
        self._ensure()
        written = held = 0
        with self.engine.begin() as conn:
            for event_type, frame in by_type.items():
                written += copy_frame(conn, self._table(table_of(event_type)), _stored_rows(event_type, frame))
            if not quarantined.is_empty():
                rows = _conform(quarantined.with_columns(pl.lit(run_id).alias("run_id")), QUARANTINE_COLUMNS)
                held = copy_frame(conn, self._table("quarantine"), rows)
        return written, held

    def read_events(self, event_type: str) -> pl.DataFrame:
        self._ensure()
        schema = event_schema(event_type)
        with self.engine.connect() as conn:
            return read_frame(conn, self._select(schema, self._table(table_of(event_type))), schema)

    @staticmethod
    def _select(schema: dict[str, pl.DataType], source: str, extra: str = "") -> str:
        # jsonb and lists come back as their JSON text (read_frame decodes the lists).
        columns = ", ".join(
            f'"{n}"::text AS "{n}"' if n == "properties" or isinstance(t, pl.List) else f'"{n}"'
            for n, t in schema.items()
        )
        return f"SELECT {columns} FROM {source}{extra}"

    def read_log(self, event_types: Iterable[str], *, user_ids: Iterable[str] | None = None) -> pl.DataFrame:
        self._ensure()
        types = list(dict.fromkeys(event_types))
        if not types:
            return pl.DataFrame(schema=EVENT_LOG_SCHEMA)
        where = " WHERE user_id = ANY(%(users)s)" if user_ids is not None else ""
        selects = [
            f"SELECT '{t}'::text AS event_type, event_id, user_id, item_id, occurred_at, received_at, "
            f"properties::text AS properties FROM {self._table(table_of(t))}{where}"
            for t in types
            if t in EVENT_TYPES
        ]
        params = {"users": list(user_ids)} if user_ids is not None else None
        with self.engine.connect() as conn:
            return read_frame(conn, " UNION ALL ".join(selects), EVENT_LOG_SCHEMA, params)

    def read_quarantine(self) -> pl.DataFrame:
        self._ensure()
        with self.engine.connect() as conn:
            return read_frame(conn, self._select(QUARANTINE_COLUMNS, self._table("quarantine")), QUARANTINE_COLUMNS)

    def handled_ids(self, *, received_since: datetime | None = None) -> set[str]:
        self._ensure()
        where = " WHERE received_at >= %(since)s" if received_since is not None else ""
        tables = [self._table(table_of(t)) for t in EVENT_TYPES] + [self._table("quarantine")]
        query = " UNION ALL ".join(f"SELECT event_id FROM {t}{where}" for t in tables)
        with self.engine.connect() as conn:
            params = {"since": received_since} if received_since is not None else None
            frame = read_frame(conn, query, {"event_id": pl.String()}, params)
        return set(frame["event_id"].to_list())

    def exported_ids(self, event_type: str, column: str) -> set[str]:
        self._ensure()
        query = f'SELECT DISTINCT "{column}" FROM {self._table(table_of(event_type))} WHERE "{column}" IS NOT NULL'
        with self.engine.connect() as conn:
            return set(read_frame(conn, query, {column: pl.String()})[column].to_list())

    def counts(self) -> dict[str, int]:
        self._ensure()
        query = " UNION ALL ".join(
            f"SELECT '{t}'::text AS event_type, count(*) AS n FROM {self._table(table_of(t))}" for t in EVENT_TYPES
        )
        with self.engine.connect() as conn:
            frame = read_frame(conn, query, {"event_type": pl.String(), "n": pl.Int64()})
        return {t: n for t, n in frame.iter_rows() if n}

    def read_watermark(self) -> datetime | None:
        self._ensure()
        query = f"SELECT max(watermark) AS watermark FROM {self._table('export_run')}"
        with self.engine.connect() as conn:
            value = read_frame(conn, query, {"watermark": UTC_DATETIME}).item()
        return value if isinstance(value, datetime) else None

    def save_watermark(self, watermark: datetime, *, run_id: str, summary: dict[str, Any]) -> None:
        self._ensure()
        import sqlalchemy as sa

        stmt = sa.text(
            f"INSERT INTO {self._table('export_run')} (run_id, watermark, finished_at, summary) "
            "VALUES (:run_id, :watermark, now(), CAST(:summary AS jsonb))"
        )
        with self.engine.begin() as conn:
            conn.execute(stmt, {"run_id": run_id, "watermark": watermark, "summary": json.dumps(summary, default=str)})

    def close(self) -> None:
        if self._own_engine:
            self.engine.dispose()
