"""Served slates (the serving app's JSON-lines log) → recommendation.impression events in the event log.

The worker loads them continuously (`FITREC_WORKER_SERVED_LOAD_S`); this command loads what is left,
e.g. after the app ran with the loader off. Both go through `serving.ranking.impressions`, which
remembers how far each file was read, so nothing is read twice.
"""

from datetime import datetime

from pipelines.config import PipelineSettings
from platform_api.runtime import open_platform
from serving.ranking.impressions import ImpressionLoader, LoadReport

__all__ = ["LoadReport", "load_served"]


def load_served(settings: PipelineSettings, *, now: datetime | None = None) -> LoadReport:
    """Load what the served-log files gained since the last load (waiting for a running loader to finish)."""
    platform = open_platform(settings.platform())
    try:
        loader = ImpressionLoader(directory=settings.served_log_dir, sessions=platform.sessions)
        return loader.load(now=now, wait=True)
    finally:
        platform.close()
