"""One place that imports every table module, so metadata is complete for Alembic."""

import importlib

TABLE_MODULES = (
    "platform_api.events.tables",
    "platform_api.catalogue.tables",
    "platform_api.auth.tables",
    "platform_api.email.tables",
    "platform_api.plans.tables",
    "platform_api.workouts.tables",
    "platform_api.health.tables",
    "platform_api.entitlements.tables",
    "platform_api.payments.tables",
    "platform_api.outbox",
    "platform_api.job_runs",
    "platform_api.cache_signals",
    "platform_api.analytics.tables",
)


def load_all_tables() -> None:
    for name in TABLE_MODULES:
        importlib.import_module(name)
