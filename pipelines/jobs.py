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


def health_sync(settings: WorkerSettings) -> Mapping[str, Any]:
    """Pull linked health providers (Fitbit Web API) into health metrics and events."""
    from platform_api.health.sync import sync_health
    from platform_api.runtime import open_platform

    platform = open_platform(settings.platform(), migrate=False)  # the worker migrated at start
    try:
        return sync_health(platform.sessions, settings=platform.settings).as_dict()
    finally:
        platform.close()


def activity_summary(settings: WorkerSettings) -> Mapping[str, Any]:
    """Queue yesterday's activity summary of each active user in the outbox (the relay sends them)."""
    from platform_api.activity_summary import queue_summaries, yesterday
    from platform_api.runtime import open_platform

    platform = open_platform(settings.platform(), migrate=False)  # the worker migrated at start
    try:
        with platform.sessions() as session:
            report = queue_summaries(session, day=yesterday())
    finally:
        platform.close()
    return {"day": report.day.isoformat(), "active_users": report.active_users, "queued": report.queued}


def analytics(settings: WorkerSettings) -> Mapping[str, Any]:
    """Rewrite the dashboard's aggregates of the days the events received since the last run change."""
    from pipelines.analytics import aggregate_analytics

    report = aggregate_analytics(settings)
    return {
        "days": report.days,
        "since": report.since and report.since.isoformat(),
        "impressions": report.impressions,
        "clicks": report.clicks,
        "conversions": report.conversions,
    }


def retrain(settings: WorkerSettings) -> Mapping[str, Any]:
    """The retraining pipeline with its gate; skipped (not failed) while another run holds its lock."""
    from pipelines.retrain import RetrainBusy, run_retrain

    try:
        result = run_retrain(settings)
    except RetrainBusy as exc:
        return {"skipped": str(exc)}
    return {
        "pipeline_run_id": result.pipeline_run_id,
        "promoted": result.promoted,
        "reason": result.reason,
        "challenger": result.challenger_version,
        "champion": result.champion_after,
    }


def precompute(settings: WorkerSettings) -> Mapping[str, Any]:
    """Warm the shared serving cache with every active user's top-10; skipped without a shared (Redis) cache."""
    from pipelines.precompute import NoSharedCache, describe, precompute, serving_settings

    try:
        return describe(precompute(serving_settings(settings)))
    except NoSharedCache as exc:  # the embedded profile: nothing another process could read
        return {"skipped": str(exc)}


def scheduled_jobs(settings: WorkerSettings) -> dict[str, tuple[str, Job]]:
    """Job name → (cron expression from settings, function)."""
    return {
        "materialize": (settings.materialize_cron, materialize),
        "retrain": (settings.retrain_cron, retrain),
        "analytics": (settings.analytics_cron, analytics),
        "health_sync": (settings.health_sync_cron, health_sync),
        "activity_summary": (settings.activity_summary_cron, activity_summary),
        "precompute": (settings.precompute_cron, precompute),
    }
