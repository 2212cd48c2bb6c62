"""Ingestion benchmark and helpers the benchmarks share; each returns figures and prints nothing itself.

The serving benchmarks are in pipelines.bench_serving.
"""

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from pipelines.config import PipelineSettings
from pipelines.simulate import simulate_into_platform
from platform_api.catalogue.service import list_items, seed_catalogue
from platform_api.config import PlatformSettings, normalise_db_url
from platform_api.runtime import open_platform


def bench_ingestion(
    *, users: int, days: int, database_url: str | None = None, batch_size: int = 5000
) -> dict[str, float]:
    """Simulated events through validation and committed inserts, in a scratch database (and folder)."""
    with tempfile.TemporaryDirectory() as scratch, scratch_database(database_url) as url:
        platform = open_platform(PlatformSettings(FITREC_DATA_DIR=Path(scratch), DATABASE_URL=url))
        try:
            with platform.sessions() as session:
                seed_catalogue(session)
                items = list_items(session)
            end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            report = simulate_into_platform(
                platform.sessions, items=items, users=users, days=days, seed=1, end=end, batch_size=batch_size
            )
        finally:
            platform.close()
    return {"events": report.events, "seconds": report.seconds, "events_per_s": report.events / report.seconds}


@contextmanager
def scratch_database(server_url: str | None) -> Iterator[str | None]:
    """A new database on the server of `server_url` for the block, dropped after; None stays None (SQLite)."""
    if server_url is None:
        yield None
        return
    admin = sa.create_engine(normalise_db_url(server_url), isolation_level="AUTOCOMMIT")
    name = f"fitrec_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def create_service_key(settings: PipelineSettings, *, name: str, scopes: list[str]) -> str:
    """A new service API key in the configured platform database; returns its secret."""
    from platform_api.auth.api_keys import create_api_key

    platform = open_platform(settings.platform())
    try:
        with platform.sessions() as session:
            _, secret = create_api_key(session, name=name, scopes=scopes, created_by=None)
            session.commit()
    finally:
        platform.close()
    return secret
