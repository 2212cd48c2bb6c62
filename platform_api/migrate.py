"""Apply the Alembic migrations to the configured database."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def upgrade(engine: Engine, revision: str = "heads") -> None:
    with engine.begin() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current(engine: Engine) -> list[str]:
    """The revisions the database is at (empty: never migrated)."""
    with engine.connect() as conn:
        return sorted(MigrationContext.configure(conn).get_current_heads())


def history(engine: Engine) -> list[Script]:
    """Every revision, newest first."""
    return list(ScriptDirectory.from_config(alembic_config(engine)).walk_revisions())


def pending(engine: Engine) -> list[Script]:
    """Revisions not yet applied to the database, oldest first."""
    scripts = ScriptDirectory.from_config(alembic_config(engine))
    at = current(engine)
    applied = {r.revision for r in scripts.iterate_revisions(tuple(at), "base")} if at else set()
    return [s for s in reversed(history(engine)) if s.revision not in applied]


def autogenerate(engine: Engine, message: str) -> None:
    """Developer helper: write a new revision from the difference to the models."""
    with engine.begin() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)
