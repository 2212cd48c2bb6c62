"""Served-slate log: every slate the API serves, appended as one JSON line.

At thousands of requests per second a database insert of ten impression events
per request would cost more CPU than serving them, so the request path only
appends to a queue and one thread writes the lines; `serving.ranking.impressions`
turns the files into recommendation.impression events through the ingestion path.
The last slates written stay in memory a while, so feedback on a slate whose
impressions are not loaded yet can still be checked against it.
"""

import json
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

log = logging.getLogger(__name__)

# (served_at epoch seconds, request_id, user_id, JSON of the served data list, model_version, surface, arm, cached)
Served = tuple[float, str, str, bytes, str, str, str, bool]
LINE = (
    b'{"served_at":%.6f,"request_id":"%s","user_id":%s,"model_version":"%s","arm":"%s","surface":"%s",'
    b'"cached":%s,"data":%s}\n'
)
RECENT = 20_000  # slates kept in memory after they are written (about 1.5 kB each at k=10)


@dataclass(frozen=True)
class ServedSlate:
    """One served request: its items in order and how it was served."""

    request_id: str
    user_id: str
    item_ids: tuple[str | None, ...]  # by position (None: a position whose impression is not known)
    model_version: str
    arm: str
    surface: str

    def position(self, item_id: str) -> int | None:
        return self.item_ids.index(item_id) if item_id in self.item_ids else None


class ServedLog:
    def __init__(self, directory: Path, *, flush_s: float = 1.0, recent: int = RECENT) -> None:
        self._dir = directory
        self._flush_s = flush_s
        self._queue: deque[Served] = deque()
        self._recent: OrderedDict[str, Served] = OrderedDict()
        self._keep = recent
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="served-log", daemon=True)

    def start(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def record(
        self,
        *,
        request_id: str,
        user_id: str,
        data_json: bytes,
        model_version: str,
        surface: str,
        arm: str = "champion",
        cached: bool = False,
    ) -> None:
        self._queue.append((time.time(), request_id, user_id, data_json, model_version, surface, arm, cached))

    def find(self, request_id: str) -> ServedSlate | None:
        """The slate served as `request_id` by this process, while it is queued or recently written."""
        served = self._recent.get(request_id)
        if served is None:
            # deque.copy() runs in C under the GIL: a consistent snapshot while requests append.
            served = next((s for s in self._queue.copy() if s[1] == request_id), None)
        if served is None:
            return None
        _, rid, uid, data_json, version, surface, arm, _ = served
        items = tuple(d["item_id"] for d in json.loads(data_json))
        return ServedSlate(request_id=rid, user_id=uid, item_ids=items, model_version=version, arm=arm, surface=surface)

    def flush(self) -> int:
        served: list[Served] = []
        while self._queue:
            served.append(self._queue.popleft())
        if not served:
            return 0
        # Formatted by hand: this thread shares the GIL with the request path. Only user_id
        # is free text; request ids, versions, arms and surfaces are generated or validated.
        lines = b"".join(
            LINE
            % (
                at,
                rid.encode(),
                orjson.dumps(uid),
                version.encode(),
                arm.encode(),
                surface.encode(),
                b"true" if cached else b"false",
                data_json,
            )
            for at, rid, uid, data_json, version, surface, arm, cached in served
        )
        # One file per process and hour: writers never share a file, and finished hours can be loaded and archived.
        path = self._dir / f"served-{datetime.now(UTC):%Y%m%d%H}-{os.getpid()}.jsonl"
        self._remember(served)  # before the write: `find` never misses a slate between queue and file
        try:
            with path.open("ab") as out:
                out.write(lines)
        except OSError:
            self._queue.extendleft(reversed(served))  # keep them for the next flush
            raise
        return len(served)

    def _remember(self, served: list[Served]) -> None:
        recent = self._recent
        for s in served[max(0, len(served) - self._keep) :]:
            recent[s[1]] = s
        while len(recent) > self._keep:
            recent.popitem(last=False)

    def _run(self) -> None:
        while not self._stop.wait(self._flush_s):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the slates stay queued; the next flush retries
                log.exception("served-log flush failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.flush()
