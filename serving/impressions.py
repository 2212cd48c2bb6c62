"""Impression log: served slates become recommendation.impression events, written in batches.

Writing per request would put a database round trip on the cached hot path; a
buffer flushed by one thread keeps the request path to an append.
"""

import logging
import threading
import uuid
from collections import deque
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from platform_api.events.ingest import store_events
from platform_api.events.schemas import EventIn

log = logging.getLogger(__name__)
NAMESPACE = uuid.UUID("6f1c7a52-3d1e-4a8e-9f57-2d0b8c1c9e11")


class ImpressionLog:
    def __init__(self, sessions: sessionmaker[Session], *, flush_s: float = 1.0) -> None:
        self._sessions = sessions
        self._flush_s = flush_s
        self._queue: deque[EventIn] = deque()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="impression-log", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def record(
        self,
        *,
        request_id: str,
        user_id: str,
        item_ids: list[str],
        scores: list[float],
        model_version: str,
        surface: str,
    ) -> None:
        now = datetime.now(UTC)
        for position, (item_id, score) in enumerate(zip(item_ids, scores, strict=True)):
            self._queue.append(
                EventIn(
                    # Deterministic: an app backend reporting the same impression is deduplicated.
                    event_id=uuid.uuid5(NAMESPACE, f"{request_id}:{position}"),
                    event_type="recommendation.impression",
                    user_id=user_id,
                    item_id=item_id,
                    occurred_at=now,
                    properties={
                        "request_id": request_id,
                        "position": position,
                        "model_version": model_version,
                        "arm": "champion",
                        "surface": surface,
                        "score": score,
                    },
                )
            )

    def flush(self) -> int:
        batch: list[EventIn] = []
        while self._queue:
            batch.append(self._queue.popleft())
        if not batch:
            return 0
        try:
            with self._sessions() as session:
                store_events(session, events=batch)
                session.commit()
        except Exception:
            self._queue.extendleft(reversed(batch))  # keep them for the next flush
            raise
        return len(batch)

    def _run(self) -> None:
        while not self._stop.wait(self._flush_s):
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the batch stays queued; the next flush retries
                log.exception("impression flush failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.flush()
