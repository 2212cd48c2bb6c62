"""Served slates (the serving app's JSON-lines log) → recommendation.impression events in the event log."""

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.config import PipelineSettings
from platform_api.events.ingest import ingest
from platform_api.runtime import open_platform

# Impression ids derive from (request_id, position): loading a file twice stores nothing twice.
NAMESPACE = uuid.UUID("6f1c7a52-3d1e-4a8e-9f57-2d0b8c1c9e11")
BATCH = 5000


@dataclass(frozen=True)
class LoadReport:
    files: int
    slates: int
    stored: int
    duplicates: int
    rejected: list[str]


def impression_events(line: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "event_id": str(uuid.uuid5(NAMESPACE, f"{line['request_id']}:{position}")),
            "event_type": "recommendation.impression",
            "user_id": line["user_id"],
            "item_id": item_id,
            "occurred_at": datetime.fromtimestamp(line["served_at"], UTC).isoformat(),  # epoch seconds
            "properties": {
                "request_id": line["request_id"],
                "position": position,
                "model_version": line["model_version"],
                "arm": "champion",
                "surface": line["surface"],
                "score": score,
            },
        }
        for position, (item_id, score) in enumerate((d["item_id"], d["score"]) for d in line["data"])
    ]


def load_served(settings: PipelineSettings, *, now: datetime | None = None) -> LoadReport:
    """Ingest every served-log file; files of finished hours move to `loaded/` once stored."""
    now = now or datetime.now(UTC)
    directory = settings.served_log_dir
    files = sorted(directory.glob("served-*.jsonl")) if directory.exists() else []
    current_hour = f"served-{now:%Y%m%d%H}-"
    platform = open_platform(settings.platform())
    slates = stored = duplicates = 0
    rejected: list[str] = []
    try:
        for path in files:
            events: list[dict[str, Any]] = []
            for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                try:
                    events += impression_events(json.loads(text))
                    slates += 1
                except (ValueError, KeyError, TypeError) as exc:
                    rejected.append(f"{path.name}:{number}: {exc}")  # e.g. a line cut by a crash
            for start in range(0, len(events), BATCH):
                with platform.sessions() as session:
                    result = ingest(session, raw=events[start : start + BATCH])
                    session.commit()
                stored += result.stored
                duplicates += result.duplicates
                rejected += [f"{path.name}: event {r.event_id}: {r.errors}" for r in result.rejected]
            if not path.name.startswith(current_hour):
                _archive(path)
    finally:
        platform.close()
    return LoadReport(files=len(files), slates=slates, stored=stored, duplicates=duplicates, rejected=rejected)


def _archive(path: Path) -> None:
    loaded = path.parent / "loaded"
    loaded.mkdir(exist_ok=True)
    path.rename(loaded / path.name)
