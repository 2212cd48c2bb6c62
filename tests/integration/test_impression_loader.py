"""The served log → impressions loader on a real database (SQLite and PostgreSQL): incremental over
growing files of several writer processes, once across restarts, with a quarantine for what fails."""

import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from platform_api.config import PlatformSettings
from platform_api.events.tables import EventLog
from platform_api.runtime import Platform, open_platform
from serving.ranking.impressions import LOCK_FILE, STATE_FILE, ImpressionLoader, impression_id, served_slate
from serving.ranking.request_ids import RequestIds
from serving.ranking.served_log import ServedLog

IDS = RequestIds(b"k" * 32)
SLATE = [
    {"item_id": f"item-{p}", "item_type": "plan", "title": "T", "score": 1 - p / 10, "reason": "R"} for p in range(10)
]
DATA = json.dumps(SLATE, separators=(",", ":")).encode()
# Another API process: its own pid, so its own file in the same folder.
OTHER_WRITER = """
import sys
from pathlib import Path
from serving.ranking.served_log import ServedLog
log = ServedLog(Path(sys.argv[1]))
for rid in sys.argv[3:]:
    log.record(request_id=rid, user_id="u-other", data_json=sys.argv[2].encode(),
               model_version="v7", surface="home", arm="challenger", cached=True)
log.flush()
"""


@pytest.fixture
def platform(db_url: str, tmp_path: Path) -> Iterator[Platform]:
    platform = open_platform(PlatformSettings(FITREC_DATA_DIR=tmp_path, DATABASE_URL=db_url))
    yield platform
    platform.close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    served = tmp_path / "served"
    served.mkdir()
    return served


def impressions(platform: Platform, user_id: str) -> list[EventLog]:
    with platform.sessions() as session:
        return list(
            session.scalars(
                select(EventLog).where(EventLog.event_type == "recommendation.impression", EventLog.user_id == user_id)
            )
        )


def serve(log: ServedLog, user_id: str, *, cached: bool = False) -> str:
    rid = IDS.new(user_id)
    log.record(request_id=rid, user_id=user_id, data_json=DATA, model_version="v3", surface="home", cached=cached)
    return rid


def test_growing_files_of_two_writers_load_as_they_grow_and_once_across_restarts(platform, folder) -> None:  # type: ignore[no-untyped-def]
    log = ServedLog(folder)
    loader = ImpressionLoader(directory=folder, sessions=platform.sessions)
    first = [serve(log, "u-1"), serve(log, "u-1", cached=True)]
    log.flush()
    report = loader.load()
    assert (report.slates, report.stored, report.duplicates, report.rejected) == (2, 20, 0, [])

    other = [IDS.new("u-other") for _ in range(3)]
    subprocess.run([sys.executable, "-c", OTHER_WRITER, str(folder), DATA.decode(), *other], check=True, timeout=60)
    assert len(list(folder.glob("served-*.jsonl"))) == 2  # one file per writer process
    latest = serve(log, "u-1")
    log.flush()  # the first writer's file grows
    report = loader.load()
    assert (report.files, report.slates, report.stored, report.duplicates) == (2, 4, 40, 0)

    # A line the writer is still writing waits for its end; nothing of it is stored or quarantined.
    current = next(p for p in folder.glob("served-*.jsonl") if p.name.endswith(f"-{os.getpid()}.jsonl"))
    half_done = serve(log, "u-1")
    log.flush()
    text = current.read_bytes()
    line_start = text.rstrip(b"\n").rfind(b"\n") + 1
    whole_line = text[line_start:]
    with current.open("r+b") as handle:
        handle.truncate(line_start + len(whole_line) // 2)
    assert loader.load().slates == 0 and not (folder / "quarantine").exists()
    with current.open("ab") as handle:
        handle.write(whole_line[len(whole_line) // 2 :])
    assert (loader.load().slates, loader.totals.stored) == (1, 70)

    # A restart reads nothing again: the offsets are in the state file beside the logs.
    assert json.loads((folder / STATE_FILE).read_text())["offsets"]
    again = ImpressionLoader(directory=folder, sessions=platform.sessions).load()
    assert (again.slates, again.stored, again.duplicates) == (0, 0, 0)

    rows = impressions(platform, "u-1")
    assert len(rows) == 40
    by_request = {r.properties["request_id"] for r in rows}
    assert by_request == {*first, latest, half_done}
    one = next(r for r in rows if r.properties["request_id"] == first[1] and r.properties["position"] == 3)
    assert one.item_id == "item-3" and one.event_id == impression_id(first[1], 3)
    assert one.properties == {
        "request_id": first[1],
        "position": 3,
        "model_version": "v3",
        "arm": "champion",
        "surface": "home",
        "cached": True,
        "score": pytest.approx(0.7),
    }
    others = impressions(platform, "u-other")
    assert len(others) == 30 and {r.properties["arm"] for r in others} == {"challenger"}
    assert all(r.properties["cached"] is True and r.properties["model_version"] == "v7" for r in others)


def test_lines_that_fail_the_contract_are_quarantined_with_the_reason(platform, folder) -> None:  # type: ignore[no-untyped-def]
    good = IDS.new("u-2")
    line = {"served_at": datetime.now(UTC).timestamp(), "request_id": good, "user_id": "u-2", "model_version": "v3"}
    lines = [
        json.dumps(line | {"surface": "home", "data": SLATE}),
        '{"served_at": 1, "request_id": ',  # not JSON (a torn write)
        json.dumps(line | {"data": SLATE}),  # no surface
        json.dumps(line | {"request_id": IDS.new("u-2"), "surface": "x" * 100, "data": SLATE[:2]}),  # too long
    ]
    path = folder / f"served-{datetime.now(UTC):%Y%m%d%H}-424242.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = ImpressionLoader(directory=folder, sessions=platform.sessions).load()
    assert report.slates == 2 and report.stored == 10 and len(report.rejected) == 4
    records = [json.loads(t) for t in (folder / "quarantine" / path.name).read_text().splitlines()]
    reasons = [r["reason"] for r in records]
    assert reasons[0].startswith("unreadable line: JSONDecodeError") and "KeyError('surface')" in reasons[1]
    assert reasons[2:] == ["event fails the contract"] * 2
    assert records[0]["raw"] == lines[1] and records[0]["offset"] == len(lines[0]) + 1
    assert all(e["loc"].endswith("surface") and "64" in e["msg"] for r in records[2:] for e in r["errors"])
    assert {r["raw"]["properties"]["position"] for r in records[2:]} == {0, 1}
    assert len(impressions(platform, "u-2")) == 10


def test_finished_hours_move_to_loaded_and_a_cut_last_line_is_quarantined(platform, folder) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    old_hour = now - timedelta(hours=3)
    rid = IDS.new("u-3")
    line = json.dumps(
        {"served_at": old_hour.timestamp(), "request_id": rid, "user_id": "u-3", "model_version": "v3"}
        | {"surface": "home", "arm": "champion", "cached": False, "data": SLATE}
    )
    old = folder / f"served-{old_hour:%Y%m%d%H}-1234.jsonl"
    old.write_text(line + "\n" + line[:40])  # the writer died mid-line
    current = folder / f"served-{now:%Y%m%d%H}-1234.jsonl"
    current.write_text(line.replace(rid, IDS.new("u-3")) + "\n")
    report = ImpressionLoader(directory=folder, sessions=platform.sessions).load(now=now)
    assert (report.slates, report.stored) == (2, 20)
    assert report.rejected == [f"{old.name}@{len(line) + 1}: line cut short (the writer stopped)"]
    assert not old.exists() and (folder / "loaded" / old.name).exists() and current.exists()
    assert list(json.loads((folder / STATE_FILE).read_text())["offsets"]) == [current.name]
    with platform.sessions() as session:
        slate = served_slate(session, request_id=rid, max_positions=50)
        assert slate is not None and slate.item_ids == tuple(d["item_id"] for d in SLATE)
        assert (slate.user_id, slate.model_version, slate.arm, slate.surface) == ("u-3", "v3", "champion", "home")
        assert slate.position("item-4") == 4 and slate.position("nope") is None
        assert served_slate(session, request_id=IDS.new("u-3"), max_positions=50) is None


def test_one_loader_at_a_time_per_folder(platform, folder) -> None:  # type: ignore[no-untyped-def]
    log = ServedLog(folder)
    serve(log, "u-4")
    log.flush()
    loader = ImpressionLoader(directory=folder, sessions=platform.sessions)
    with (folder / LOCK_FILE).open("a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process's loader, mid-load
        busy = loader.load()
        assert busy.busy and busy.slates == 0 and impressions(platform, "u-4") == []
    assert loader.load().stored == 10


def test_the_served_log_finds_slates_queued_or_recently_written(folder) -> None:  # type: ignore[no-untyped-def]
    log = ServedLog(folder, recent=2)
    rids = [serve(log, "u-5") for _ in range(3)]
    queued = log.find(rids[0])
    assert queued is not None and queued.item_ids == tuple(d["item_id"] for d in SLATE) and queued.user_id == "u-5"
    assert log.flush() == 3
    assert log.find(rids[0]) is None  # only the last `recent` stay in memory once written
    written = log.find(rids[2])
    assert written is not None and (written.model_version, written.arm, written.surface) == ("v3", "champion", "home")
    assert log.find(IDS.new("u-5")) is None


def test_the_load_served_command_loads_what_the_app_left(db_url, tmp_path, folder) -> None:  # type: ignore[no-untyped-def]
    from pipelines.config import PipelineSettings
    from pipelines.load_served import load_served

    log = ServedLog(folder)
    serve(log, "u-6")
    log.flush()  # an app that ran with its loader off
    settings = PipelineSettings(FITREC_DATA_DIR=tmp_path, DATABASE_URL=db_url)
    first = load_served(settings)
    assert (first.files, first.slates, first.stored, first.rejected) == (1, 1, 10, [])
    assert load_served(settings).slates == 0
