"""Alembic environment: runs against the connection handed in by platform_api.migrate."""

from alembic import context

from platform_api.db import Base
from platform_api.tables import load_all_tables

load_all_tables()
config = context.config
connection = config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
