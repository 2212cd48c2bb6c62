"""Import Fitbit daily exports exactly as Fitbit writes them.

Reads `dailyActivity_merged.csv`, `dailyIntensities_merged.csv`, `sleepDay_merged.csv` and
`weightLogInfo_merged.csv` (US month/day/year dates, some with 12-hour clock times, empty
cells) into daily health metrics of users `<prefix><Fitbit Id>`, source "fitbit":

- steps: TotalSteps; active minutes: VeryActiveMinutes + FairlyActiveMinutes (moderate to
  vigorous activity), from dailyActivity, or dailyIntensities for a day the other lacks;
- sleep minutes: TotalMinutesAsleep; weight: WeightKg, or WeightPounds converted.

Every row is either used or reported with file, line and reason; nothing is dropped silently:
- unreadable: wrong number of cells, a date or number that does not parse, an unknown Id;
- out_of_range: values outside the event contract (for example more than 150,000 steps);
- not_worn: 0 steps and 1440 sedentary minutes, the export's mark of a day without the
  tracker; storing it as 0 steps would read as a day without walking;
- duplicate: a second row for the same user and day (the first is kept; identical rows say so);
- conflict: two files disagreeing about one value (dailyActivity and the kg column win).
"""

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from platform_api.events.ingest import store_events
from platform_api.events.schemas import EventIn
from platform_api.health.service import DayKey, StoreResult, check_day, store_days
from platform_api.health.units import LB_KG
from platform_api.outbox import event_uuid

FITBIT_DIR = Path(__file__).parent / "data" / "fitbit"
SOURCE = "fitbit"
ACTIVITY = "dailyActivity_merged.csv"
INTENSITIES = "dailyIntensities_merged.csv"
SLEEP = "sleepDay_merged.csv"
WEIGHT = "weightLogInfo_merged.csv"
FILES = (ACTIVITY, INTENSITIES, SLEEP, WEIGHT)
DATE_FORMATS = ("%m/%d/%Y", "%m/%d/%Y %I:%M:%S %p")
MINUTES_PER_DAY = 1440


@dataclass(frozen=True)
class Problem:
    file: str
    line: int  # 1 is the header
    kind: str  # unreadable | out_of_range | not_worn | duplicate | conflict | missing_file
    reason: str


@dataclass
class FileReport:
    rows: int = 0
    used: int = 0


@dataclass
class FitbitReport:
    files: dict[str, FileReport] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    users: int = 0
    days: int = 0
    changed: int = 0
    unchanged: int = 0

    def count(self, kind: str) -> int:
        return sum(p.kind == kind for p in self.problems)


class RowError(ValueError):
    pass


def parse_timestamp(text: str) -> datetime:
    """Fitbit's US dates: `4/12/2016` or `4/12/2016 11:59:59 PM` (naive device-local time)."""
    value = text.strip()
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    raise RowError(f"unreadable date {text!r} (expected month/day/year, optionally with a 12-hour time)")


def parse_int(row: dict[str, str], column: str) -> int:
    text = (row.get(column) or "").strip()
    if not text:
        raise RowError(f"{column} is empty")
    try:
        return int(text)
    except ValueError:
        raise RowError(f"{column} is not a whole number: {text!r}") from None


def parse_float(row: dict[str, str], column: str) -> float | None:
    text = (row.get(column) or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise RowError(f"{column} is not a number: {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise RowError(f"{column} is not a finite number: {text!r}")
    return value


def parse_user(row: dict[str, str]) -> str:
    text = (row.get("Id") or "").strip()
    if not text.isdigit():
        raise RowError(f"Id is not a Fitbit user id: {text!r}")
    return text


Row = tuple[int, dict[str, str]]


def read_rows(folder: Path, name: str, required: tuple[str, ...], report: FitbitReport) -> Iterator[Row]:
    """(line number, row) of one export; structural problems are reported, not raised."""
    path = folder / name
    report.files[name] = FileReport()
    if not path.is_file():
        report.problems.append(Problem(name, 0, "missing_file", f"{path} does not exist"))
        return
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            report.problems.append(Problem(name, 1, "unreadable", "empty file"))
            return
        header = [h.strip() for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            report.problems.append(Problem(name, 1, "unreadable", f"missing columns: {', '.join(missing)}"))
            return
        for cells in reader:
            line = reader.line_num
            if not cells or all(not c.strip() for c in cells):
                continue  # a blank line is not a row
            report.files[name].rows += 1
            if len(cells) != len(header):
                report.problems.append(
                    Problem(name, line, "unreadable", f"{len(cells)} cells where the header has {len(header)}")
                )
                continue
            yield line, dict(zip(header, cells, strict=True))


def _read(
    folder: Path,
    name: str,
    required: tuple[str, ...],
    report: FitbitReport,
    parse: Callable[[dict[str, str]], tuple[str, date, dict[str, Any], Any]],
) -> dict[tuple[str, date], tuple[int, dict[str, Any], Any]]:
    """Parse every row with `parse` -> (fitbit id, day, values, extra); first row per (id, day) kept."""
    seen: dict[tuple[str, date], tuple[int, dict[str, Any], Any]] = {}
    raw_by_key: dict[tuple[str, date], dict[str, str]] = {}
    for line, row in read_rows(folder, name, required, report):
        try:
            fitbit_id, day, values, extra = parse(row)
        except RowError as exc:
            report.problems.append(Problem(name, line, "unreadable", str(exc)))
            continue
        key = (fitbit_id, day)
        if key in seen:
            first = seen[key][0]
            same = raw_by_key[key] == row
            report.problems.append(
                Problem(
                    name,
                    line,
                    "duplicate",
                    f"{'identical to' if same else 'same user and day as'} line {first}; line {first} is kept",
                )
            )
            continue
        if values.get("not_worn"):
            report.problems.append(
                Problem(
                    name, line, "not_worn", "tracker not worn (0 steps, 1440 sedentary minutes): no activity stored"
                )
            )
            seen[key] = (line, {}, extra)
            raw_by_key[key] = row
            continue
        reason = check_day(values, day)
        if reason:
            report.problems.append(Problem(name, line, "out_of_range", reason))
            continue
        seen[key] = (line, values, extra)
        raw_by_key[key] = row
    return seen


def _activity(row: dict[str, str]) -> tuple[str, date, dict[str, Any], Any]:
    fitbit_id, day = parse_user(row), parse_timestamp(row["ActivityDate"]).date()
    steps, sedentary = parse_int(row, "TotalSteps"), parse_int(row, "SedentaryMinutes")
    active = parse_int(row, "VeryActiveMinutes") + parse_int(row, "FairlyActiveMinutes")
    if steps == 0 and sedentary >= MINUTES_PER_DAY:
        return fitbit_id, day, {"not_worn": True}, None
    return fitbit_id, day, {"steps": steps, "active_minutes": active}, None


def _intensities(row: dict[str, str]) -> tuple[str, date, dict[str, Any], Any]:
    fitbit_id, day = parse_user(row), parse_timestamp(row["ActivityDay"]).date()
    sedentary = parse_int(row, "SedentaryMinutes")
    active = parse_int(row, "VeryActiveMinutes") + parse_int(row, "FairlyActiveMinutes")
    light = parse_int(row, "LightlyActiveMinutes")
    # Without steps, a whole sedentary day is the only sign of a tracker left off (used when dailyActivity lacks it).
    idle = sedentary >= MINUTES_PER_DAY and active + light == 0
    return fitbit_id, day, {"active_minutes": active}, idle


def _sleep(row: dict[str, str]) -> tuple[str, date, dict[str, Any], Any]:
    return (
        parse_user(row),
        parse_timestamp(row["SleepDay"]).date(),
        {"sleep_minutes": parse_int(row, "TotalMinutesAsleep")},
        None,
    )


def _weight(row: dict[str, str]) -> tuple[str, date, dict[str, Any], Any]:
    at = parse_timestamp(row["Date"])
    kg, lb = parse_float(row, "WeightKg"), parse_float(row, "WeightPounds")
    if kg is None and lb is None:
        raise RowError("neither WeightKg nor WeightPounds is given")
    from_lb = round(lb * LB_KG, 2) if lb is not None else None
    weight = round(kg, 2) if kg is not None else from_lb
    conflict = kg is not None and from_lb is not None and abs(kg - from_lb) > 0.05
    return parse_user(row), at.date(), {"weight_kg": weight}, (from_lb if conflict else None)


def _register_people(session: Session, *, days: dict[DayKey, dict[str, Any]]) -> None:
    """A user.created per imported person (once: deterministic ids), so their days join a known user."""
    first_day: dict[str, date] = {}
    for user_id, day in days:
        first_day[user_id] = min(day, first_day.get(user_id, day))
    store_events(
        session,
        events=[
            EventIn(
                event_id=event_uuid(f"user.created:{user_id}:{SOURCE}"),
                event_type="user.created",
                user_id=user_id,
                occurred_at=datetime.combine(day, time.min, tzinfo=UTC),
                properties={"source": "import"},
            )
            for user_id, day in sorted(first_day.items())
        ],
    )


def import_fitbit(
    session: Session, *, folder: Path = FITBIT_DIR, user_prefix: str = "fitbit-", now: datetime | None = None
) -> FitbitReport:
    """Read the four exports, store their days (one transaction) and report every unused row."""
    now = now or datetime.now(UTC)
    report = FitbitReport()
    activity = _read(
        folder,
        ACTIVITY,
        ("Id", "ActivityDate", "TotalSteps", "VeryActiveMinutes", "FairlyActiveMinutes", "SedentaryMinutes"),
        report,
        _activity,
    )
    intensities = _read(
        folder,
        INTENSITIES,
        ("Id", "ActivityDay", "VeryActiveMinutes", "FairlyActiveMinutes", "LightlyActiveMinutes", "SedentaryMinutes"),
        report,
        _intensities,
    )
    sleep = _read(folder, SLEEP, ("Id", "SleepDay", "TotalMinutesAsleep"), report, _sleep)
    weight = _read(folder, WEIGHT, ("Id", "Date", "WeightKg", "WeightPounds"), report, _weight)

    days: dict[DayKey, dict[str, Any]] = {}
    used = {name: 0 for name in FILES}

    def put(fitbit_id: str, day: date, values: dict[str, Any]) -> None:
        days.setdefault((f"{user_prefix}{fitbit_id}", day), {}).update(values)

    for (fid, day), (_, values, _) in activity.items():
        if values:
            put(fid, day, values)
            used[ACTIVITY] += 1
    for (fid, day), (line, values, idle) in intensities.items():
        other = activity.get((fid, day))
        if other is not None and not other[1]:
            report.problems.append(
                Problem(
                    INTENSITIES,
                    line,
                    "not_worn",
                    f"the tracker was not worn ({ACTIVITY} line {other[0]}): no activity stored",
                )
            )
            continue
        if other is None:
            if idle:
                report.problems.append(
                    Problem(
                        INTENSITIES, line, "not_worn", "tracker not worn (1440 sedentary minutes): no activity stored"
                    )
                )
                continue
            put(fid, day, values)  # the only activity record of the day
        elif other[1]["active_minutes"] != values["active_minutes"]:
            report.problems.append(
                Problem(
                    INTENSITIES,
                    line,
                    "conflict",
                    f"{values['active_minutes']} active minutes where {ACTIVITY} line {other[0]} has "
                    f"{other[1]['active_minutes']}; {ACTIVITY} is kept",
                )
            )
            continue
        used[INTENSITIES] += 1
    for (fid, day), (_, values, _) in sleep.items():
        put(fid, day, values)
        used[SLEEP] += 1
    for (fid, day), (line, values, from_lb) in weight.items():
        put(fid, day, values)
        used[WEIGHT] += 1
        if from_lb is not None:
            report.problems.append(
                Problem(
                    WEIGHT,
                    line,
                    "conflict",
                    f"WeightKg {values['weight_kg']} but WeightPounds gives {from_lb} kg; WeightKg is kept",
                )
            )
    for name in FILES:
        report.files[name].used = used[name]

    _register_people(session, days=days)
    stored: StoreResult = store_days(session, source=SOURCE, days=days, now=now)
    session.commit()
    report.users = len({user for user, _ in days})
    report.days, report.changed, report.unchanged = stored.days, stored.changed, stored.unchanged
    report.problems.sort(key=lambda p: (FILES.index(p.file) if p.file in FILES else 99, p.line))
    return report
