"""The scheduled jobs of `fitrec worker`: each a function of the worker's settings returning what it did."""

from collections.abc import Mapping
from typing import Any

from pipelines.config import WorkerSettings
from pipelines.worker import Job


def materialize(settings: WorkerSettings) -> Mapping[str, Any]:
    """Validate new events, rebuild the feature tables, load what is newer into the online store."""
    from pipelines.build_features import build_features

    report = build_features(settings)
    return {"events": report.events, "materialized_until": report.materialized_until.isoformat()}


def scheduled_jobs(settings: WorkerSettings) -> dict[str, tuple[str, Job]]:
    """Job name → (cron expression from settings, function)."""
    return {
        "materialize": (settings.materialize_cron, materialize),
    }
