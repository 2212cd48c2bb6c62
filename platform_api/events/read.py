"""Reading the event log into polars frames: the one reader of the `event_log` table for every consumer.

The export streams it in `received_at` order (`iter_events`); the serving app's
feature pusher and `refresh_users` read filtered slices (`read_events`).
`properties` come back as their JSON text, as the transforms and validators parse it.
"""

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

import polars as pl
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy import Engine

from platform_api.events.schemas import EventIn
from platform_api.events.tables import EventLog

UTC_DATETIME = pl.Datetime("us", "UTC")
LOG_SCHEMA = pl.Schema(
    {
        "event_id": pl.String(),
        "event_type": pl.String(),
        "user_id": pl.String(),
        "item_id": pl.String(),
        "occurred_at": UTC_DATETIME,
        "received_at": UTC_DATETIME,
        "properties": pl.String(),
    }
)
DEFAULT_CHUNK = 200_000


def select_events(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    received_since: datetime | None = None,
    user_ids: Iterable[str] | None = None,
    event_types: Iterable[str] | None = None,
    columns: Sequence[str] | None = None,
) -> sa.Select[Any]:
    """The log's rows matching every filter given, oldest `received_at` first.

    `since`/`until` bound `occurred_at` (inclusive), `received_since` bounds
    `received_at` (inclusive); `columns` (default all of LOG_SCHEMA) picks what is read.
    """
    t = EventLog.__table__.c
    chosen = list(columns or LOG_SCHEMA)
    unknown = set(chosen) - set(LOG_SCHEMA)
    if unknown:
        raise ValueError(f"no such event log columns: {sorted(unknown)}")
    stmt = sa.select(
        *(sa.cast(t.properties, sa.Text).label("properties") if c == "properties" else t[c] for c in chosen)
    ).order_by(t.received_at, t.event_id)
    if event_types is not None:
        stmt = stmt.where(t.event_type.in_(list(event_types)))
    if since is not None:
        stmt = stmt.where(t.occurred_at >= since)
    if until is not None:
        stmt = stmt.where(t.occurred_at <= until)
    if received_since is not None:
        stmt = stmt.where(t.received_at >= received_since)
    if user_ids is not None:
        stmt = stmt.where(t.user_id.in_(list(user_ids)))
    return stmt


def iter_events(
    engine: Engine,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    since: datetime | None = None,
    until: datetime | None = None,
    received_since: datetime | None = None,
    user_ids: Iterable[str] | None = None,
    event_types: Iterable[str] | None = None,
    columns: Sequence[str] | None = None,
) -> Iterator[pl.DataFrame]:
    """The matching rows in `received_at` order, `chunk_size` at a time (streamed, never loaded whole)."""
    stmt = select_events(
        since=since,
        until=until,
        received_since=received_since,
        user_ids=user_ids,
        event_types=event_types,
        columns=columns,
    )
    schema = _schema(columns)
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=chunk_size).execute(stmt)
        for rows in result.partitions():
            yield pl.DataFrame(rows, schema=schema, orient="row")


def _schema(columns: Sequence[str] | None) -> pl.Schema:
    return LOG_SCHEMA if columns is None else pl.Schema({c: LOG_SCHEMA[c] for c in columns})


def read_events(
    engine: Engine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    received_since: datetime | None = None,
    user_ids: Iterable[str] | None = None,
    event_types: Iterable[str] | None = None,
    columns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """The matching rows as one frame of LOG_SCHEMA's columns (empty, with the schema, when none match)."""
    chunks = list(
        iter_events(
            engine,
            since=since,
            until=until,
            received_since=received_since,
            user_ids=user_ids,
            event_types=event_types,
            columns=columns,
        )
    )
    return pl.concat(chunks) if chunks else pl.DataFrame(schema=_schema(columns))


def conforming(events: pl.DataFrame) -> pl.DataFrame:
    """The rows that satisfy the event contract (`EventIn`), in order.

    Ingestion only stores conforming events, but older producers may have
    written the log directly; a consumer that cannot wait for the batch
    validation (the online push) drops what the contract refuses.
    """
    keep = []
    for row in events.select("event_id", "event_type", "user_id", "item_id", "occurred_at", "properties").iter_rows():
        event_id, event_type, user_id, item_id, occurred_at, properties = row
        try:
            EventIn(
                event_id=event_id,
                event_type=event_type,
                user_id=user_id,
                item_id=item_id,
                occurred_at=occurred_at,
                properties=json.loads(properties) if properties else {},
            )
            keep.append(True)
        except (ValidationError, ValueError, TypeError):
            keep.append(False)
    return events.filter(pl.Series(keep, dtype=pl.Boolean)) if events.height else events
