"""Simulated events go through the platform's ingestion into the event log, once each."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pipelines.simulate import SimulatorBug, simulate_into_platform
from platform_api.catalogue.build import Catalogue, build_catalogue
from platform_api.catalogue.service import Item, list_items, seed_catalogue
from platform_api.config import PlatformSettings
from platform_api.events.tables import EventLog
from platform_api.runtime import Platform, open_platform
from training.simulator import simulate

END = datetime(2026, 2, 1, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return build_catalogue()


def seeded(platform: Platform, catalogue: Catalogue) -> list[Item]:
    """The recommendable items as the CLI gets them: seeded into the platform, then listed."""
    with platform.sessions() as session:
        seed_catalogue(session, catalogue=catalogue)
        return list_items(session)


def counts_by_type(platform: Platform) -> dict[str, int]:
    with platform.sessions() as session:
        rows = session.execute(
            select(EventLog.event_type, func.count())
            .where(EventLog.event_type != "content.ready")  # the catalogue's own events
            .group_by(EventLog.event_type)
        )
        return {event_type: n for event_type, n in rows}


def test_simulated_events_are_stored_once_and_rerun_counts_duplicates(
    catalogue: Catalogue, db_url: str, tmp_path: Path
) -> None:
    platform = open_platform(PlatformSettings(FITREC_DATA_DIR=tmp_path, DATABASE_URL=db_url))
    try:
        items = seeded(platform, catalogue)
        advanced: list[int] = []
        totals: list[int] = []
        report = simulate_into_platform(
            platform.sessions,
            items=items,
            users=40,
            days=10,
            seed=4,
            end=END,
            batch_size=1000,
            progress=advanced.append,
            on_total=totals.append,
        )
        expected = simulate(items, users=40, days=10, seed=4, end=END)
        assert report.events == len(expected) > 1500
        assert (report.stored, report.duplicates) == (report.events, 0)
        assert totals == [report.events] == [sum(advanced)] and max(advanced) == 1000
        assert counts_by_type(platform) == expected.counts()
        with platform.sessions() as session:
            first = session.get(EventLog, expected.events[0]["event_id"])
            assert first is not None and first.event_type == expected.events[0]["event_type"]
            assert first.occurred_at == datetime.fromisoformat(expected.events[0]["occurred_at"])

        again = simulate_into_platform(platform.sessions, items=items, users=40, days=10, seed=4, end=END)
        assert (again.events, again.stored, again.duplicates) == (report.events, 0, report.events)
        assert counts_by_type(platform) == expected.counts()
    finally:
        platform.close()


def test_a_rejected_event_fails_the_run_and_nothing_is_stored(catalogue: Catalogue, tmp_path: Path) -> None:
    platform = open_platform(PlatformSettings(FITREC_DATA_DIR=tmp_path, DATABASE_URL=None))
    try:
        items = seeded(platform, catalogue)
        # A window ending next month makes events "in the future", which the contract refuses.
        future = datetime.now(UTC) + timedelta(days=30)
        with pytest.raises(SimulatorBug, match="rejected"):
            simulate_into_platform(platform.sessions, items=items, users=5, days=2, seed=1, end=future, batch_size=50)
        assert counts_by_type(platform) == {}
    finally:
        platform.close()
