"""Where validated events land: the offline event store (partitioned parquet) and the quarantine.

Layout under the data folder:
    offline/events/event_type=<type>/date=<occurred_at date, UTC>/part-<run>-<chunk>.parquet
        one event type's valid rows; envelope columns, `received_at`, the raw `properties`
        JSON and each property as a typed column (the partition keys live in the path);
    quarantine/events/<run>-<chunk>.parquet
        event_id, event_type, reasons (names of the failed expectations), raw (JSON),
        received_at, run_id.
Files are written under a temporary name and renamed, so a reader never sees half a file.
"""

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import polars as pl

EVENTS = "events"
TYPE_KEY, DATE_KEY = "event_type", "date"


def _write_atomic(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, path)


def events_root(offline_dir: Path) -> Path:
    return offline_dir / EVENTS


def type_dir(offline_dir: Path, event_type: str) -> Path:
    return events_root(offline_dir) / f"{TYPE_KEY}={event_type}"


def write_events(offline_dir: Path, by_type: dict[str, pl.DataFrame], *, part: str) -> int:
    """Write each type's valid rows into its date partitions; returns the rows written."""
    written = 0
    for event_type, frame in by_type.items():
        if frame.is_empty():
            continue
        dated = frame.with_columns(pl.col("occurred_at").dt.date().alias(DATE_KEY)).drop(TYPE_KEY)
        for (day,), rows in dated.partition_by(DATE_KEY, as_dict=True, include_key=False).items():
            _write_atomic(rows, type_dir(offline_dir, event_type) / f"{DATE_KEY}={day}" / f"part-{part}.parquet")
            written += rows.height
    return written


def _type_dirs(offline_dir: Path) -> Iterator[tuple[str, Path]]:
    root = events_root(offline_dir)
    if root.is_dir():
        for path in sorted(root.glob(f"{TYPE_KEY}=*")):
            if any(path.glob("*/*.parquet")):
                yield path.name.split("=", 1)[1], path


def read_events(offline_dir: Path, event_type: str) -> pl.DataFrame:
    """One event type's exported rows (with its `date` partition), or an empty frame."""
    path = type_dir(offline_dir, event_type)
    if not any(path.glob("*/*.parquet")):
        return pl.DataFrame()
    return pl.scan_parquet(path / "**" / "*.parquet", hive_partitioning=True).collect()


def write_quarantine(quarantine_dir: Path, frame: pl.DataFrame, *, part: str, run_id: str) -> int:
    if frame.is_empty():
        return 0
    _write_atomic(frame.with_columns(pl.lit(run_id).alias("run_id")), quarantine_dir / EVENTS / f"{part}.parquet")
    return frame.height


def read_quarantine(quarantine_dir: Path) -> pl.DataFrame:
    files = sorted((quarantine_dir / EVENTS).glob("*.parquet"))
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed") if files else pl.DataFrame()


def handled_ids(offline_dir: Path, quarantine_dir: Path, *, received_since: datetime | None = None) -> set[str]:
    """Ids already exported or quarantined (received at or after `received_since`, if given)."""
    scans = [pl.scan_parquet(path / "**" / "*.parquet", hive_partitioning=False) for _, path in _type_dirs(offline_dir)]
    if any((quarantine_dir / EVENTS).glob("*.parquet")):
        scans.append(pl.scan_parquet(quarantine_dir / EVENTS / "*.parquet"))
    ids: set[str] = set()
    for scan in scans:
        if received_since is not None:
            scan = scan.filter(pl.col("received_at") >= received_since)
        ids.update(scan.select("event_id").collect()["event_id"].to_list())
    return ids


def exported_ids(offline_dir: Path, event_type: str, column: str) -> set[str]:
    """Distinct values of one column of a type's exported rows (users created, items made ready)."""
    path = type_dir(offline_dir, event_type)
    if not any(path.glob("*/*.parquet")):
        return set()
    scan = pl.scan_parquet(path / "**" / "*.parquet", hive_partitioning=False)
    return set(scan.select(pl.col(column).drop_nulls().unique()).collect()[column].to_list())
