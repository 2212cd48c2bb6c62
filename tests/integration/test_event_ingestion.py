"""Ingestion on both backends: validation, dedupe by event_id, counts that add up."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from platform_api.config import PlatformSettings
from platform_api.events.ingest import ingest
from platform_api.events.tables import EventLog
from platform_api.runtime import open_platform


def _event(**over):  # type: ignore[no-untyped-def]
    ev = {
        "event_id": str(uuid.uuid4()),
        "event_type": "workout.completed",
        "user_id": "u-1",
        "item_id": "plan-x",
        "occurred_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "properties": {"session_id": "s1", "duration_min": 30, "total_sets": 10, "total_reps": 100, "calories": 200},
    }
    ev.update(over)
    return ev


@pytest.fixture
def platform(db_url, tmp_path):  # type: ignore[no-untyped-def]
    p = open_platform(PlatformSettings(FITREC_DATA_DIR=tmp_path, DATABASE_URL=db_url))
    yield p
    p.close()


def test_duplicates_are_stored_once_and_counted(platform) -> None:  # type: ignore[no-untyped-def]
    first, second = _event(), _event()
    with platform.sessions() as s:
        r1 = ingest(s, raw=[first, second, dict(first)])
        s.commit()
    assert (r1.received, r1.stored, r1.duplicates, r1.rejected) == (3, 2, 1, [])
    with platform.sessions() as s:
        r2 = ingest(s, raw=[first])
        s.commit()
        assert (r2.stored, r2.duplicates) == (0, 1)
        assert s.scalar(select(func.count()).select_from(EventLog)) == 2
        row = s.get(EventLog, first["event_id"])
        assert row is not None and row.occurred_at.tzinfo is not None and row.properties["total_sets"] == 10


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"event_type": "workout.teleported"}, "unknown event_type"),
        ({"user_id": None}, "user_id is required"),
        ({"occurred_at": "2026-01-01T00:00:00"}, "timezone"),
        ({"occurred_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}, "future"),
        (
            {"properties": {"session_id": "s1", "duration_min": -5, "total_sets": 1, "total_reps": 1, "calories": 1}},
            "greater than 0",
        ),
        ({"event_id": "not-a-uuid"}, "UUID"),
    ],
)
def test_malformed_events_are_rejected_with_reason(platform, override, fragment) -> None:  # type: ignore[no-untyped-def]
    good, bad = _event(), _event(**override)
    with platform.sessions() as s:
        result = ingest(s, raw=[good, bad])
        s.commit()
        assert result.stored == 1
        assert [r.index for r in result.rejected] == [1]
        assert fragment.lower() in str(result.rejected[0].errors).lower()
        assert s.scalar(select(func.count()).select_from(EventLog)) == 1


def test_seeded_catalogue_lists_the_items_built_without_a_database(platform) -> None:  # type: ignore[no-untyped-def]
    from platform_api.catalogue.service import catalogue_items, list_items, seed_catalogue

    with platform.sessions() as s:
        first = seed_catalogue(s)
        again = seed_catalogue(s)
        assert first.created == first.content_items + first.plans and again.created == 0
        assert list_items(s) == catalogue_items()
