"""Health on SQLite and PostgreSQL: encrypted provider tokens, batch sync with unit normalisation,
the real Fitbit exports imported as they come, unreadable rows reported with line and reason."""

import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import test_platform_support as support
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from test_platform_support import ENCRYPTION_KEY, error_code, events_of, make_account

from platform_api.health.crypto import InvalidToken, TokenCipher
from platform_api.health.fitbit import FITBIT_DIR, import_fitbit
from platform_api.health.service import provider_tokens
from platform_api.health.tables import HealthIntegration, HealthMetricDay
from platform_api.runtime import Platform

# Fixtures shared by the platform tests.
client = support.client
platform = support.platform


def test_link_provider_tokens_encrypted_at_rest(platform: Platform, client: TestClient) -> None:
    user, other = make_account(platform), make_account(platform)
    body = {"provider": "fitbit", "access_token": "access-PLAINTEXT-123", "refresh_token": "refresh-PLAINTEXT-456"}
    linked = client.post("/v1/health/integrations", json=body, headers=user.headers)
    assert linked.status_code == 201, linked.text
    assert "PLAINTEXT" not in linked.text
    with platform.sessions() as session:
        row = session.get(HealthIntegration, linked.json()["id"])
        assert row is not None
        assert b"PLAINTEXT" not in row.access_token_enc and b"PLAINTEXT" not in (row.refresh_token_enc or b"")
        assert provider_tokens(row, TokenCipher(ENCRYPTION_KEY)) == ("access-PLAINTEXT-123", "refresh-PLAINTEXT-456")
        with pytest.raises(InvalidToken):
            TokenCipher("another-key").decrypt(row.access_token_enc)
    relinked = client.post("/v1/health/integrations", json={**body, "access_token": "new"}, headers=user.headers)
    assert relinked.status_code == 200 and relinked.json()["id"] == linked.json()["id"]
    # Someone else's integration does not exist for them.
    for method, url in [
        ("get", f"/v1/health/integrations/{linked.json()['id']}"),
        ("delete", f"/v1/health/integrations/{linked.json()['id']}"),
    ]:
        assert client.request(method, url, headers=other.headers).status_code == 404
    sync = client.post(
        f"/v1/health/integrations/{linked.json()['id']}/sync",
        headers=other.headers,
        json={"measurements": [{"day": "2026-01-01", "metric": "steps", "value": 1}]},
    )
    assert sync.status_code == 404


def test_sync_normalises_units_and_is_idempotent(platform: Platform, client: TestClient) -> None:
    user = make_account(platform)
    integration = client.post(
        "/v1/health/integrations", json={"provider": "garmin", "access_token": "t"}, headers=user.headers
    ).json()
    url = f"/v1/health/integrations/{integration['id']}/sync"
    measurements = [
        {"day": "2026-01-10", "metric": "steps", "value": 8412},
        {"day": "2026-01-10", "metric": "sleep", "value": 7.5, "unit": "h"},
        {"day": "2026-01-10", "metric": "weight", "value": 180, "unit": "lb"},
        {"day": "2026-01-10", "metric": "resting_hr", "value": 58},
        {"day": "2026-01-11", "metric": "active_time", "value": 1800, "unit": "s"},
        {"day": "2026-01-11", "metric": "weight", "value": 12, "unit": "st"},
    ]
    first = client.post(url, json={"measurements": measurements}, headers=user.headers)
    assert first.status_code == 200, first.text
    assert first.json() | {"last_synced_at": None} == {
        "received": 6,
        "days": 2,
        "changed": 2,
        "unchanged": 0,
        "last_synced_at": None,
    }
    days = {d["day"]: d for d in client.get("/v1/health/metrics", headers=user.headers).json()["data"]}
    assert days["2026-01-10"]["sleep_minutes"] == 450 and days["2026-01-10"]["steps"] == 8412
    assert days["2026-01-10"]["weight_kg"] == pytest.approx(81.65, abs=0.01)  # 180 lb
    assert days["2026-01-11"]["active_minutes"] == 30 and days["2026-01-11"]["weight_kg"] == pytest.approx(
        76.2, abs=0.01
    )
    events = events_of(platform, "health_metric.synced", user_id=user.id)
    assert len(events) == 2
    assert {e.properties["day"]: e.properties.get("sleep_minutes") for e in events} == {
        "2026-01-10": 450,
        "2026-01-11": None,
    }
    assert events[0].occurred_at == datetime(2026, 1, 10, 23, 59, 59, tzinfo=UTC)

    again = client.post(url, json={"measurements": measurements}, headers=user.headers).json()
    assert again["changed"] == 0 and again["unchanged"] == 2
    assert len(events_of(platform, "health_metric.synced", user_id=user.id)) == 2
    listed = client.get("/v1/health/integrations", headers=user.headers).json()["data"]
    assert listed[0]["last_synced_at"] == again["last_synced_at"]

    # A later sync with one new value merges into the day and emits one more event.
    more = client.post(
        url, json={"measurements": [{"day": "2026-01-10", "metric": "steps", "value": 9000}]}, headers=user.headers
    ).json()
    assert more["changed"] == 1
    assert client.get("/v1/health/metrics", headers=user.headers).json()["data"][1]["sleep_minutes"] == 450


def test_sync_rejects_bad_batches_whole(platform: Platform, client: TestClient) -> None:
    user = make_account(platform)
    integration = client.post(
        "/v1/health/integrations", json={"provider": "oura", "access_token": "t"}, headers=user.headers
    ).json()
    url = f"/v1/health/integrations/{integration['id']}/sync"
    good = {"day": "2026-01-10", "metric": "steps", "value": 100}
    for bad in [
        {"day": "2026-01-10", "metric": "weight", "value": 70, "unit": "parsec"},
        {"day": "2026-01-10", "metric": "steps", "value": 250_000},
        {"day": "2026-01-10", "metric": "weight", "value": 5, "unit": "kg"},
        {"day": "2999-01-01", "metric": "steps", "value": 1},
    ]:
        response = client.post(url, json={"measurements": [good, bad]}, headers=user.headers)
        assert response.status_code == 422 and error_code(response) == "validation_error", bad
    assert (
        client.post(url, json={"measurements": [{**good, "metric": "mood"}]}, headers=user.headers).status_code == 422
    )
    assert client.get("/v1/health/metrics", headers=user.headers).json()["count"] == 0
    assert events_of(platform, "health_metric.synced", user_id=user.id) == []


def test_import_real_fitbit_exports(platform: Platform) -> None:
    with platform.sessions() as session:
        report = import_fitbit(session, folder=FITBIT_DIR)
    assert {name: (f.rows, f.used) for name, f in report.files.items()} == {
        "dailyActivity_merged.csv": (940, 868),  # 72 days without the tracker worn
        "dailyIntensities_merged.csv": (940, 868),
        "sleepDay_merged.csv": (413, 410),  # 3 rows repeat a day, identically
        "weightLogInfo_merged.csv": (67, 67),
    }
    assert report.users == 33
    assert report.count("not_worn") == 144 and report.count("duplicate") == 3
    assert report.count("unreadable") == report.count("out_of_range") == report.count("conflict") == 0
    duplicates = [(p.file, p.line) for p in report.problems if p.kind == "duplicate"]
    assert duplicates == [("sleepDay_merged.csv", 163), ("sleepDay_merged.csv", 225), ("sleepDay_merged.csv", 382)]
    assert report.days == report.changed == 868  # every sleep and weight day is a day the tracker was worn

    with platform.sessions() as session:

        def day(fitbit_id: str, d: date) -> HealthMetricDay:
            row = session.get(HealthMetricDay, (f"fitbit-{fitbit_id}", d, "fitbit"))
            assert row is not None
            return row

        first = day("1503960366", date(2016, 4, 12))  # 13162 steps, 25 + 13 active minutes, 327 asleep
        assert (first.steps, first.active_minutes, first.sleep_minutes) == (13162, 38, 327)
        assert day("1927972279", date(2016, 4, 13)).weight_kg == pytest.approx(133.5)  # logged at 1:08:52 AM
        assert day("1503960366", date(2016, 5, 2)).weight_kg == pytest.approx(52.6)  # 11:59:59 PM
        total = session.scalar(
            select(func.count()).select_from(HealthMetricDay).where(HealthMetricDay.source == "fitbit")
        )
        assert total == 868
    assert len(events_of(platform, "health_metric.synced")) == 868

    with platform.sessions() as session:
        again = import_fitbit(session, folder=FITBIT_DIR)
    assert again.changed == 0 and again.unchanged == 868
    assert len(events_of(platform, "health_metric.synced")) == 868


def test_fitbit_rows_that_cannot_be_read_are_reported(platform: Platform, tmp_path: Path) -> None:
    folder = tmp_path / "fitbit"
    shutil.copytree(FITBIT_DIR, folder)
    activity = folder / "dailyActivity_merged.csv"
    lines = activity.read_text().splitlines()
    lines[1] = lines[1].replace("4/12/2016", "2016-04-12")  # line 2: an ISO date
    lines[2] = lines[2].rsplit(",", 1)[0]  # line 3: a cell missing
    lines[3] = lines[3].replace(",10460,", ",ten thousand,")  # line 4: not a number
    lines[4] = lines[4].replace(",9762,", ",999999,")  # line 5: out of range
    activity.write_text("\n".join(lines) + "\n")
    weight = folder / "weightLogInfo_merged.csv"
    wlines = weight.read_text().splitlines()
    wlines[3] = wlines[3].replace("133.5,", ",")  # line 4: only pounds given -> converted
    weight.write_text("\n".join(wlines) + "\n")
    (folder / "sleepDay_merged.csv").unlink()

    with platform.sessions() as session:
        report = import_fitbit(session, folder=folder)
    by_line = {(p.file, p.line): (p.kind, p.reason) for p in report.problems}
    assert by_line[("dailyActivity_merged.csv", 2)][0] == "unreadable"
    assert "2016-04-12" in by_line[("dailyActivity_merged.csv", 2)][1]
    assert by_line[("dailyActivity_merged.csv", 3)] == ("unreadable", "14 cells where the header has 15")
    assert "TotalSteps" in by_line[("dailyActivity_merged.csv", 4)][1]
    assert by_line[("dailyActivity_merged.csv", 5)][0] == "out_of_range"
    assert by_line[("sleepDay_merged.csv", 0)][0] == "missing_file"
    assert report.files["dailyActivity_merged.csv"].used == 868 - 4
    with platform.sessions() as session:
        row = session.get(HealthMetricDay, ("fitbit-1927972279", date(2016, 4, 13), "fitbit"))
        assert row is not None and row.weight_kg == pytest.approx(294.317120016975 * 0.45359237, abs=0.01)
        # The unreadable day still has its intensities record: active minutes, no steps.
        first = session.get(HealthMetricDay, ("fitbit-1503960366", date(2016, 4, 12), "fitbit"))
        assert first is not None and first.steps is None and first.active_minutes == 38
