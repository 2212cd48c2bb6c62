"""Served-slate log: every slate the API serves, appended as one JSON line.

At thousands of requests per second a database insert of ten impression events
per request would cost more CPU than serving them, so the request path only
appends to a queue and one thread writes the lines; `pipelines/impressions.py`
turns the files into recommendation.impression events through the ingestion path.
"""

import json
import logging
import os
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

# (served_at epoch seconds, request_id, user_id, JSON of the served data list, model_version, surface)
Served = tuple[float, str, str, bytes, str, str]
LINE = b'{"served_at":%.6f,"request_id":"%s","user_id":%s,"model_version":"%s","surface":"%s","data":%s}\n'


class ServedLog:
    def __init__(self, directory: Path, *, flush_s: float = 1.0) -> None:
        self._dir = directory
        self._flush_s = flush_s
        self._queue: deque[Served] = deque()
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
    ) -> None:
        self._queue.append((time.time(), request_id, user_id, data_json, model_version, surface))

    def flush(self) -> int:
        served: list[Served] = []
        while self._queue:
            served.append(self._queue.popleft())
        if not served:
            return 0
        # Formatted by hand: this thread shares the GIL with the request path. Only user_id
        # is free text; request ids, versions and surfaces are generated or validated.
        lines = b"".join(
            LINE
            % (
                at,
                rid.encode(),
                json.dumps(uid).encode(),
                version.encode(),
                surface.encode(),
                data_json,
            )
            for at, rid, uid, data_json, version, surface in served
        )
        # One file per process and hour: writers never share a file, and finished hours can be loaded and archived.
        path = self._dir / f"served-{datetime.now(UTC):%Y%m%d%H}-{os.getpid()}.jsonl"
        try:
            with path.open("ab") as out:
                out.write(lines)
        except OSError:
            self._queue.extendleft(reversed(served))  # keep them for the next flush
            raise
        return len(served)

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
