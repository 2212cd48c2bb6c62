"""Event frames: envelope dicts → one frame; one event type → its properties as typed columns (polars).

Parsing never raises on bad input: a value that cannot be read as its contract type
becomes null in the typed column and is kept, as text, in `<name>__unparsed`, where a
suite's type expectation finds it. The transform and the type check are the same code.
"""

import json
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

import pandas as pd
import polars as pl

from pipelines.validation.contract import FieldSpec, specs_of

ROW = "__row"
UNPARSED = "__unparsed"
UNKNOWN = "__unknown"
ENVELOPE = ("event_id", "event_type", "user_id", "item_id", "occurred_at", "properties")
# Columns the platform adds; carried through when present, never validated.
PLATFORM_COLUMNS = ("received_at",)
UTC_DATETIME = pl.Datetime("us", "UTC")
# A JSON array of strings as polars re-serialises it (compact, escapes kept).
_STRING_ARRAY = r'^\[("(?:[^"\\]|\\.)*"(,"(?:[^"\\]|\\.)*")*)?\]$'
# Beyond 2**53 a float no longer holds every integer exactly.
_MAX_EXACT_INT = 2.0**53


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _json(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, default=str, separators=(",", ":"))


def events_frame(raw: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """Envelope dicts, as producers send them, into one frame of text columns (properties as JSON)."""
    rows = raw if isinstance(raw, list) else list(raw)
    columns: dict[str, list[Any]] = {
        "event_id": [_text(r.get("event_id")) for r in rows],
        "event_type": [_text(r.get("event_type")) for r in rows],
        "user_id": [_text(r.get("user_id")) for r in rows],
        "item_id": [_text(r.get("item_id")) for r in rows],
        "occurred_at": [_text(r.get("occurred_at")) for r in rows],
        "properties": [_json(r.get("properties")) for r in rows],
    }
    for name in PLATFORM_COLUMNS:
        if any(name in r for r in rows[:1]):
            columns[name] = [_text(r.get(name)) for r in rows]
    return pl.DataFrame(columns, schema={name: pl.String for name in columns})


def parse_utc(expr: pl.Expr) -> pl.Expr:
    """ISO-8601 text with an offset (or Z) → UTC datetime; anything else (naive included) → null."""
    return (
        expr.str.strip_chars()
        .str.replace(r"[Zz]$", "+00:00")
        .str.replace(r"^(\d{4}-\d{2}-\d{2}) ", "${1}T")
        .str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_zone="UTC", time_unit="us")
    )


def _as_text(frame: pl.DataFrame, name: str) -> pl.Expr:
    dtype = frame.schema[name]
    if dtype == pl.String:
        return pl.col(name)
    if dtype == pl.Object:
        return pl.col(name).map_elements(_text, return_dtype=pl.String)
    return pl.col(name).cast(pl.String)


def _timestamp(frame: pl.DataFrame, name: str) -> tuple[pl.Expr, pl.Expr]:
    """(typed UTC datetime, unparsed text) of a timestamp column of any dtype."""
    dtype = frame.schema[name]
    if isinstance(dtype, pl.Datetime):
        # A typed column without a zone comes from our own frames (polars drops nothing else): UTC.
        col = pl.col(name)
        typed = col.dt.replace_time_zone("UTC") if dtype.time_zone is None else col.dt.convert_time_zone("UTC")
        return typed.dt.cast_time_unit("us"), pl.lit(None, dtype=pl.String)
    text = _as_text(frame, name)
    typed = parse_utc(text)
    return typed, pl.when(text.is_not_null() & typed.is_null()).then(text)


def normalise(events: pl.DataFrame | pd.DataFrame) -> pl.DataFrame:
    """Any envelope frame → the canonical one: text ids, UTC `occurred_at`, JSON properties, a row number."""
    frame = events if isinstance(events, pl.DataFrame) else pl.from_pandas(events)
    missing = [pl.lit(None, dtype=pl.String).alias(name) for name in ENVELOPE if name not in frame.columns]
    if missing:
        frame = frame.with_columns(missing)
    props = frame.schema["properties"]
    if isinstance(props, pl.Struct):
        properties = pl.col("properties").struct.json_encode()
    elif props == pl.String:
        properties = pl.col("properties")
    else:
        properties = pl.col("properties").map_elements(_json, return_dtype=pl.String)
    properties = properties.fill_null("{}")
    occurred_at, occurred_unparsed = _timestamp(frame, "occurred_at")
    columns = [
        pl.int_range(pl.len(), dtype=pl.Int64).alias(ROW),
        _as_text(frame, "event_id").str.strip_chars().str.to_lowercase().alias("event_id"),
        _as_text(frame, "event_type").alias("event_type"),
        _as_text(frame, "user_id").alias("user_id"),
        _as_text(frame, "item_id").alias("item_id"),
        occurred_at.alias("occurred_at"),
        occurred_unparsed.alias(f"occurred_at{UNPARSED}"),
        properties.alias("properties"),
    ]
    for name in PLATFORM_COLUMNS:
        if name in frame.columns:
            columns.append(_timestamp(frame, name)[0].alias(name))
    out = frame.select(columns)
    return out.with_columns(_unreadable_properties(out["properties"]).alias(f"properties{UNPARSED}"))


def _unreadable_properties(properties: pl.Series) -> pl.Series:
    """The properties text that is not a JSON object (null where it is one)."""
    try:
        # Fast path: decoding every document at once succeeds unless one is not an object.
        properties.str.json_decode(pl.Struct({"__probe": pl.String}))
        return pl.Series(values=[None] * len(properties), dtype=pl.String)
    except pl.exceptions.PolarsError:
        pass
    # json_path_match("$") is null for text that is not JSON at all.
    document = properties.str.json_path_match("$")
    bad = document.is_null() | ~document.str.starts_with("{")
    return pl.select(pl.when(bad).then(properties)).to_series()


def _typed(spec: FieldSpec, raw: pl.Expr) -> pl.Expr:
    if spec.kind in ("int", "float"):
        number = raw.cast(pl.Float64, strict=False)
        if spec.kind == "float":
            return pl.when(number.is_finite()).then(number)
        whole = number.is_finite() & (number == number.floor()) & (number.abs() < _MAX_EXACT_INT)
        return pl.when(whole).then(number).cast(pl.Int64)
    if spec.kind == "bool":
        return pl.when(raw == "true").then(True).when(raw == "false").then(False)
    if spec.kind == "date":
        return raw.str.to_date("%Y-%m-%d", strict=False)
    if spec.kind == "datetime":
        return parse_utc(raw)
    if spec.kind == "list":
        # Only text already known to be an array of strings reaches the decoder, so it cannot raise.
        return pl.when(raw.str.contains(_STRING_ARRAY)).then(raw).str.json_decode(pl.List(pl.String))
    return raw


def _raw_properties(part: pl.DataFrame, specs: tuple[FieldSpec, ...]) -> pl.DataFrame:
    """Each property's raw value as text (arrays and objects as their JSON text)."""
    # Lists always go by JSON path: the decoder would wrap a lone string into a one-element list.
    lists = [s.name for s in specs if s.kind == "list"]
    scalars = [s.name for s in specs if s.kind != "list"]
    by_path = [pl.col("properties").str.json_path_match(f"$.{name}").alias(name) for name in lists]
    try:
        # Fast path, one decode for every scalar; it raises if any value is an array or an object.
        decoded = pl.col("properties").str.json_decode(pl.Struct({name: pl.String for name in scalars}))
        raw = part.select(decoded.struct.unnest(), *by_path) if scalars else part.select(by_path)
    except pl.exceptions.PolarsError:
        # Robust path, row by row: a JSON path never raises.
        raw = part.select(pl.col("properties").str.json_path_match(f"$.{s.name}").alias(s.name) for s in specs)
    return raw.select(s.name for s in specs)


def flatten(part: pl.DataFrame, event_type: str) -> pl.DataFrame:
    """One event type's rows with each property as a typed column (and its unreadable text, if any)."""
    specs = specs_of(event_type)
    if not specs:
        return part
    raw_frame = _raw_properties(part, specs)
    columns: list[pl.Expr] = []
    for spec in specs:
        raw = pl.col(spec.name)
        typed = _typed(spec, raw)
        columns.append(typed.alias(spec.name))
        if spec.kind != "str":
            columns.append(pl.when(raw.is_not_null() & typed.is_null()).then(raw).alias(f"{spec.name}{UNPARSED}"))
    return pl.concat([part, raw_frame.select(columns)], how="horizontal")


def mark_unknown(flat: pl.DataFrame, *, users: set[str], items: set[str]) -> pl.DataFrame:
    """`<id>__unknown`: the user/item id where it is not among the known ones (null where known or absent)."""
    columns = []
    for column, known in (("user_id", users), ("item_id", items)):
        found = pl.col(column).is_in(pl.Series(list(known), dtype=pl.String))
        columns.append(pl.when(pl.col(column).is_not_null() & ~found).then(pl.col(column)).alias(f"{column}{UNKNOWN}"))
    return flat.with_columns(columns)


def with_defaults(flat: pl.DataFrame, event_type: str) -> pl.DataFrame:
    """Fill absent optional properties with the contract's defaults; drop the helper columns."""
    fills = []
    for spec in specs_of(event_type):
        if spec.required or spec.default is None:
            continue
        if spec.kind == "list":
            fill = pl.lit(pl.Series([list(spec.default)], dtype=pl.List(pl.String)))
            fills.append(pl.when(pl.col(spec.name).is_null()).then(fill).otherwise(pl.col(spec.name)).alias(spec.name))
        else:
            fills.append(pl.col(spec.name).fill_null(spec.default))
    helpers = [c for c in flat.columns if c.endswith((UNPARSED, UNKNOWN)) or c == ROW]
    return flat.with_columns(fills).drop(helpers)


def raw_json(rows: pl.DataFrame) -> list[str]:
    """Each row's envelope as the producer sent it (as near as the frame keeps it), for the quarantine."""
    out = []
    for r in rows.iter_rows(named=True):
        occurred = r.get(f"occurred_at{UNPARSED}") or (r["occurred_at"].isoformat() if r["occurred_at"] else None)
        try:
            properties: Any = json.loads(r["properties"])
        except (TypeError, ValueError):
            properties = r["properties"]
        out.append(
            json.dumps(
                {
                    "event_id": r["event_id"],
                    "event_type": r["event_type"],
                    "user_id": r["user_id"],
                    "item_id": r["item_id"],
                    "occurred_at": occurred,
                    "properties": properties,
                },
                default=str,
            )
        )
    return out
