"""Alembic environment: runs on the connection handed in by platform_api.migrate, or, from Alembic's own CLI
(alembic.ini), on the database the platform is configured for (DATABASE_URL, else the data folder's SQLite)."""

from alembic import context

from platform_api.db import Base, make_engine
from platform_api.tables import load_all_tables

load_all_tables()
config = context.config


def run(connection: object) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if "connection" in config.attributes:
    run(config.attributes["connection"])
else:
    from platform_api.config import PlatformSettings

    url = config.get_main_option("sqlalchemy.url") or PlatformSettings().sqlalchemy_url
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            run(conn)
    finally:
        engine.dispose()
