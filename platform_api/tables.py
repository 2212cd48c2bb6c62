"""One place that imports every table module, so metadata is complete for Alembic."""

import importlib

TABLE_MODULES = (
    "platform_api.events.tables",
    "platform_api.catalogue.tables",
    "platform_api.auth.tables",
    "platform_api.email.tables",
)


def load_all_tables() -> None:
    for name in TABLE_MODULES:
        importlib.import_module(name)
