"""Served-log files → recommendation.impression events in the event log, as the files grow.

The loader remembers how far it read each file (byte offsets in a state file beside the logs, so a
restart goes on where it stopped) and reads only whole lines: a file still being written is loaded
as it grows. Impression ids derive from (request_id, position), so a region read twice (a crash
between the commit and the saved offset) stores nothing twice. Lines and events that fail the
contract go to `quarantine/` with the reason, never silently dropped. Files of hours that ended are
moved to `loaded/` once read. One loader at a time per folder (a file lock): every API process of a
host writes its own files, and whichever loader holds the lock loads them all.
"""

import fcntl
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from platform_api.events.ingest import ingest
from platform_api.events.tables import EventLog
from serving.ranking.served_log import ServedSlate

log = logging.getLogger(__name__)
NAMESPACE = uuid.UUID("6f1c7a52-3d1e-4a8e-9f57-2d0b8c1c9e11")
IMPRESSION = "recommendation.impression"
STATE_FILE = "loader-state.json"
LOCK_FILE = ".loader.lock"
QUARANTINE_DIR = "quarantine"
LOADED_DIR = "loaded"
BATCH = 5000  # impressions per transaction, whole slates only
CHUNK = 4 * 1024 * 1024  # bytes read at a time; a slate line is a few kB
# A writer picks its file's hour just before writing: a finished hour is archived only this long after it ended.
GRACE = timedelta(minutes=2)


def impression_id(request_id: str, position: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{request_id}:{position}"))


def impression_events(line: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The impression events of one served-log line (lines written before arm and cached existed default them)."""
    occurred_at = datetime.fromtimestamp(line["served_at"], UTC).isoformat()  # epoch seconds
    request_id = line["request_id"]
    return [
        {
            "event_id": impression_id(request_id, position),
            "event_type": IMPRESSION,
            "user_id": line["user_id"],
            "item_id": d["item_id"],
            "occurred_at": occurred_at,
            "properties": {
                "request_id": request_id,
                "position": position,
                "model_version": line["model_version"],
                "arm": line.get("arm", "champion"),
                "surface": line["surface"],
                "cached": line.get("cached", False),
                "score": d.get("score"),
            },
        }
        for position, d in enumerate(line["data"])
    ]


def served_slate(session: Session, *, request_id: str, max_positions: int) -> ServedSlate | None:
    """The slate of `request_id` as loaded into the event log (None: not loaded, or never served).

    Looks the impressions up by their derived primary keys: one indexed query, whatever the log's size.
    """
    ids = [impression_id(request_id, p) for p in range(max_positions)]
    rows = session.execute(
        select(EventLog.user_id, EventLog.item_id, EventLog.properties).where(EventLog.event_id.in_(ids))
    ).all()
    if not rows:
        return None
    by_position = {int(row.properties["position"]): row.item_id for row in rows}
    first = rows[0].properties
    return ServedSlate(
        request_id=request_id,
        user_id=rows[0].user_id or "",
        item_ids=tuple(by_position.get(p) for p in range(max(by_position) + 1)),
        model_version=first["model_version"],
        arm=first["arm"],
        surface=first["surface"],
    )


@dataclass
class LoadReport:
    files: int = 0
    slates: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: list[str] = field(default_factory=list)  # what went to quarantine, and why
    busy: bool = False  # another loader held the folder's lock: nothing was read

    def add(self, other: "LoadReport") -> None:
        self.files += other.files
        self.slates += other.slates
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.rejected += other.rejected


@dataclass
class _Chunk:
    """Whole lines read from one file: their events in transactions of whole slates, and what failed."""

    batches: list[list[tuple[int, dict[str, Any]]]] = field(default_factory=lambda: [[]])  # (line offset, event)
    slates: int = 0
    quarantine: list[dict[str, Any]] = field(default_factory=list)


class ImpressionLoader:
    """Loads the served-log folder into the event log; `load` is safe to call from a timer thread."""

    def __init__(self, *, directory: Path, sessions: sessionmaker[Session], batch: int = BATCH) -> None:
        self._dir = directory
        self._sessions = sessions
        self._batch = batch
        self._lock = threading.Lock()
        self._closed = False
        self.totals = LoadReport()  # everything this loader loaded since it was made

    def load(self, *, now: datetime | None = None, wait: bool = False) -> LoadReport:
        """Load what was appended since the last load; `wait` for another process's loader instead of skipping."""
        with self._lock:
            if self._closed or not self._dir.exists():
                return LoadReport()
            with self._folder_lock(wait=wait) as held:
                if not held:
                    return LoadReport(busy=True)
                report = self._load_all(now or datetime.now(UTC))
            self.totals.add(report)
            return report

    def close(self) -> None:
        """A last load (what the served log flushed at shutdown), then no more."""
        try:
            self.load(wait=True)
        except Exception:  # noqa: BLE001 - what is left is loaded by the next start
            log.exception("the last impression load failed; the next start loads the rest")
        with self._lock:
            self._closed = True

    @contextmanager
    def _folder_lock(self, *, wait: bool) -> Iterator[bool]:
        with (self._dir / LOCK_FILE).open("a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _load_all(self, now: datetime) -> LoadReport:
        offsets = self._read_offsets()
        report = LoadReport()
        for path in sorted(self._dir.glob("served-*.jsonl")):
            report.files += 1
            size = path.stat().st_size
            offset = offsets.get(path.name, 0)
            if offset > size:
                offset = 0  # a different file under a known name: read it whole (ids are idempotent)
            while offset < size:
                read_to = self._load_chunk(path, offset, size, report)
                if read_to == offset:
                    break  # only an unfinished line is left: the writer completes it
                offset = offsets[path.name] = read_to
                self._write_offsets(offsets)
            if _finished(path.name, now):
                tail = size - offset  # only a line cut by a crash is left unread in a finished file
                if tail:
                    self._quarantine_tail(path, offset, report)
                self._archive(path)
                offsets.pop(path.name, None)
                self._write_offsets(offsets)
        return report

    def _load_chunk(self, path: Path, offset: int, size: int, report: LoadReport) -> int:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read(min(CHUNK, size - offset))
        end = data.rfind(b"\n") + 1
        if end == 0:
            if len(data) < CHUNK:
                return offset
            chunk = _Chunk(quarantine=[_rejected(path, offset, "no line end within a chunk", data)])
            end = len(data)
        else:
            chunk = self._parse(path, offset, data[:end])
        report.slates += chunk.slates
        for batch in chunk.batches:
            if not batch:
                continue
            with self._sessions() as session:
                result = ingest(session, raw=[event for _, event in batch])
                session.commit()
            report.stored += result.stored
            report.duplicates += result.duplicates
            for r in result.rejected:
                line_offset, event = batch[r.index]
                chunk.quarantine.append(_rejected(path, line_offset, "event fails the contract", event, r.errors))
        self._write_quarantine(path, chunk.quarantine, report)
        return offset + end

    def _parse(self, path: Path, offset: int, data: bytes) -> _Chunk:
        chunk = _Chunk()
        at = offset
        for raw in data.split(b"\n")[:-1]:
            try:
                events = impression_events(json.loads(raw))
            except (ValueError, KeyError, TypeError, AttributeError, OverflowError, OSError) as exc:
                chunk.quarantine.append(_rejected(path, at, f"unreadable line: {exc!r}", raw))
            else:
                chunk.slates += 1
                if len(chunk.batches[-1]) + len(events) > self._batch:
                    chunk.batches.append([])
                chunk.batches[-1] += [(at, e) for e in events]
            at += len(raw) + 1
        return chunk

    def _quarantine_tail(self, path: Path, offset: int, report: LoadReport) -> None:
        with path.open("rb") as handle:
            handle.seek(offset)
            tail = handle.read()
        self._write_quarantine(path, [_rejected(path, offset, "line cut short (the writer stopped)", tail)], report)

    def _write_quarantine(self, path: Path, records: list[dict[str, Any]], report: LoadReport) -> None:
        if not records:
            return
        folder = self._dir / QUARANTINE_DIR
        folder.mkdir(exist_ok=True)
        with (folder / path.name).open("a", encoding="utf-8") as out:
            out.writelines(json.dumps(r) + "\n" for r in records)
        report.rejected += [f"{r['source']}@{r['offset']}: {r['reason']}" for r in records]
        log.warning("%d served-log records of %s quarantined", len(records), path.name)

    def _archive(self, path: Path) -> None:
        folder = self._dir / LOADED_DIR
        folder.mkdir(exist_ok=True)
        target = folder / path.name
        if target.exists():  # never overwrite a loaded file
            target = folder / f"{path.stem}-{uuid.uuid4().hex[:8]}{path.suffix}"
        path.rename(target)

    def _read_offsets(self) -> dict[str, int]:
        try:
            return {str(k): int(v) for k, v in json.loads((self._dir / STATE_FILE).read_text())["offsets"].items()}
        except FileNotFoundError:
            return {}
        except (ValueError, KeyError, TypeError, AttributeError):
            # Unreadable state: start over; the derived ids make the reload store nothing twice.
            log.warning("%s is unreadable: the served log is read again from the start", STATE_FILE)
            return {}

    def _write_offsets(self, offsets: dict[str, int]) -> None:
        state = self._dir / STATE_FILE
        scratch = state.with_suffix(".tmp")
        scratch.write_text(json.dumps({"offsets": offsets}))
        os.replace(scratch, state)  # atomic: a crash leaves the old state or the new one


def _finished(name: str, now: datetime) -> bool:
    """Whether the hour of `served-YYYYMMDDHH-<pid>.jsonl` ended (plus GRACE) before `now`."""
    try:
        hour = datetime.strptime(name.split("-")[1], "%Y%m%d%H").replace(tzinfo=UTC)
    except (IndexError, ValueError):
        return False
    return hour + timedelta(hours=1) + GRACE <= now


def _rejected(
    path: Path, offset: int, reason: str, raw: bytes | dict[str, Any], errors: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return {"source": path.name, "offset": offset, "reason": reason, "errors": errors, "raw": text}
