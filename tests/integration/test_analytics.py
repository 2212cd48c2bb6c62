"""The dashboard's aggregates on known events (SQLite and PostgreSQL) and the /v1/analytics API over them."""

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from sqlalchemy import select, update
from typer.testing import CliRunner

from pipelines import cli, jobs
from pipelines.analytics import aggregate_analytics
from pipelines.config import PipelineSettings, WorkerSettings
from platform_api.analytics.stats import wilson_interval
from platform_api.analytics.tables import CONVERSION_DAYS, AnalyticsDaily, AnalyticsItemDaily
from platform_api.auth.service import create_user
from platform_api.catalogue.service import list_items, seed_catalogue
from platform_api.events.ingest import ingest
from platform_api.events.tables import EventLog
from platform_api.runtime import open_platform
from serving.app import create_app
from serving.config import ServingSettings

PASSWORD = "correct horse battery staple"
NOW = datetime.now(UTC)
D1 = NOW.date() - timedelta(days=12)
D2 = D1 + timedelta(days=1)


def at(day: date, hour: float) -> str:
    return (datetime.combine(day, time.min, tzinfo=UTC) + timedelta(hours=hour)).isoformat()


def event(event_type: str, user: str, item: str, when: str, **props: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "user_id": user,
        "item_id": item,
        "occurred_at": when,
        "properties": props,
    }


def shown(user: str, item: str, when: str, request: str, position: int, **props: Any) -> dict[str, Any]:
    return event("recommendation.impression", user, item, when, request_id=request, position=position, **props)


def click(user: str, item: str, when: str, request: str) -> dict[str, Any]:
    return event("recommendation.clicked", user, item, when, request_id=request)


def completed(user: str, item: str, when: str) -> dict[str, Any]:
    props = {"session_id": str(uuid.uuid4()), "duration_min": 30, "total_sets": 10, "total_reps": 100, "calories": 200}
    return event("workout.completed", user, item, when, **props)


def known_events(a: str, b: str, c: str, d: str) -> list[dict[str, Any]]:
    v1 = {"model_version": "v1", "arm": "control", "surface": "home"}
    v2 = {"model_version": "v2", "arm": "challenger", "surface": "explore"}
    return [
        # r1 (u1, D1): A clicked and completed 2 days on; B clicked the next morning, completed 9 days on (too
        # late to convert); C shown only. A workout of A before the click is not a conversion of it.
        shown("u1", a, at(D1, 20), "r1", 0, **v1),
        shown("u1", b, at(D1, 20), "r1", 1, **v1),
        shown("u1", c, at(D1, 20), "r1", 2, **v1),
        completed("u2", a, at(D1, 19)),
        click("u1", a, at(D1, 20.1), "r1"),
        completed("u1", a, at(D1, 68)),
        click("u1", b, at(D2, 8), "r1"),
        completed("u1", b, at(D1, 9 * 24 + 10)),
        # r2 (u2, D1, the challenger): D clicked and its completion reported as feedback; a click on A of
        # another request is not a click of this slate.
        shown("u2", a, at(D1, 10), "r2", 0, **v2),
        shown("u2", d, at(D1, 10), "r2", 1, **v2),
        click("u2", d, at(D1, 10.2), "r2"),
        event("recommendation.converted", "u2", d, at(D2, 1), request_id="r2", action="complete"),
        click("u2", a, at(D1, 10.3), "r-other"),
        # A month before anything was recommended: no day to aggregate.
        completed("u3", a, at(D1 - timedelta(days=30), 10)),
        # r3 (u1, D2): A shown, clicked three days later: past the click window.
        shown("u1", a, at(D2, 9), "r3", 0, **v1),
        click("u1", a, at(D2, 80), "r3"),
    ]


@pytest.fixture
def platform_db(db_url: str, tmp_path: Path) -> Iterator[tuple[PipelineSettings, list[str]]]:
    settings = PipelineSettings(FITREC_DATA_DIR=tmp_path, DATABASE_URL=db_url)
    platform = open_platform(settings.platform())
    with platform.sessions() as session:
        seed_catalogue(session)
        items = [i.item_id for i in list_items(session)]
        result = ingest(session, raw=known_events(*items[:4]))
        assert not result.rejected, result.rejected
        for email, role in (("ana@example.com", "analyst"), ("ada@example.com", "admin"), ("al@example.com", "user")):
            create_user(session, email=email, password=PASSWORD, role=role)
        session.commit()
    platform.close()
    yield settings, items


def daily_rows(settings: PipelineSettings) -> set[tuple[Any, ...]]:
    platform = open_platform(settings.platform())
    with platform.sessions() as session:
        rows = session.execute(
            select(
                AnalyticsDaily.day,
                AnalyticsDaily.model_version,
                AnalyticsDaily.arm,
                AnalyticsDaily.surface,
                AnalyticsDaily.position,
                AnalyticsDaily.impressions,
                AnalyticsDaily.clicks,
                AnalyticsDaily.conversions,
            )
        ).all()
    platform.close()
    return {tuple(r) for r in rows}


EXPECTED = {
    (D1, "v1", "control", "home", 0, 1, 1, 1),
    (D1, "v1", "control", "home", 1, 1, 1, 0),
    (D1, "v1", "control", "home", 2, 1, 0, 0),
    (D1, "v2", "challenger", "explore", 0, 1, 0, 0),
    (D1, "v2", "challenger", "explore", 1, 1, 1, 1),
    (D2, "v1", "control", "home", 0, 1, 0, 0),
}


def test_aggregates_of_known_events_rewritten_not_doubled(platform_db: tuple[PipelineSettings, list[str]]) -> None:
    settings, items = platform_db
    report = aggregate_analytics(settings)
    assert (report.since, report.until, report.days) == (D1, NOW.date(), 13)
    assert (report.impressions, report.clicks, report.conversions) == (6, 3, 2)
    assert daily_rows(settings) == EXPECTED

    again = aggregate_analytics(settings)
    assert (again.impressions, again.clicks, again.conversions) == (6, 3, 2)
    assert daily_rows(settings) == EXPECTED

    # A late click of C (r1, shown on D1) arrives: the next run finds the day it changes and rewrites it.
    platform = open_platform(settings.platform())
    with platform.sessions() as session:
        ingest(session, raw=[click("u1", items[2], at(D1, 21), "r1")])
        session.commit()
        late = aggregate_analytics(settings)
        # From the earliest event received since the last run (all of them, within its margin) a conversion
        # window back, but not before the first impression.
        assert late.since == D1
        item_clicks = dict(
            session.execute(
                select(AnalyticsItemDaily.item_id, AnalyticsItemDaily.clicks).where(AnalyticsItemDaily.day == D1)
            ).all()
        )
    platform.close()
    expected = (EXPECTED - {(D1, "v1", "control", "home", 2, 1, 0, 0)}) | {(D1, "v1", "control", "home", 2, 1, 1, 0)}
    assert daily_rows(settings) == expected
    assert item_clicks == {items[0]: 1, items[1]: 1, items[2]: 1, items[3]: 1}

    # An explicit window far back rewrites the same figures; so do the worker's job and the CLI.
    aggregate_analytics(settings, since=D1 - timedelta(days=30))
    assert daily_rows(settings) == expected
    worker = WorkerSettings(FITREC_DATA_DIR=settings.data_dir, DATABASE_URL=settings.database_url)
    assert jobs.scheduled_jobs(worker)["analytics"] == (worker.analytics_cron, jobs.analytics)
    assert jobs.analytics(worker) == {
        "days": (NOW.date() - D1).days + 1,
        "since": D1.isoformat(),
        "impressions": 6,
        "clicks": 4,
        "conversions": 2,
    }
    env = {"FITREC_DATA_DIR": str(settings.data_dir), "DATABASE_URL": settings.database_url or ""}
    result = CliRunner().invoke(cli.app, ["analytics", "aggregate", "--since", D2.isoformat()], env=env)
    assert result.exit_code == 0, result.output
    assert f"{(NOW.date() - D2).days + 1} days rewritten" in result.output and "1 impressions" in result.output
    assert daily_rows(settings) == expected

    # Once the log is older than the last run, a new event rewrites only the days it can change: its own
    # and a conversion window before it.
    platform = open_platform(settings.platform())
    with platform.sessions() as session:
        session.execute(update(EventLog).values(received_at=NOW - timedelta(days=1)))
        ingest(session, raw=[completed("u1", items[0], at(NOW.date() - timedelta(days=1), 10))])
        session.commit()
    platform.close()
    recent = aggregate_analytics(settings)
    assert (recent.since, recent.days) == (NOW.date() - timedelta(days=1 + CONVERSION_DAYS), CONVERSION_DAYS + 2)
    assert daily_rows(settings) == expected


def test_wilson_interval_values() -> None:
    low, high = wilson_interval(5, 10) or (0, 0)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    low, high = wilson_interval(0, 10) or (1, 1)
    assert low == 0 and round(high, 4) == 0.2775
    low, high = wilson_interval(10, 100) or (0, 0)
    assert (round(low, 4), round(high, 4)) == (0.0552, 0.1744)
    assert wilson_interval(0, 0) is None


@pytest.fixture
def client(platform_db: tuple[PipelineSettings, list[str]]) -> Iterator[TestClient]:
    settings, _ = platform_db
    aggregate_analytics(settings)
    serving = ServingSettings(FITREC_DATA_DIR=settings.data_dir, DATABASE_URL=settings.database_url, model_refresh_s=0)
    with TestClient(create_app(serving)) as test_client:
        yield test_client


def token(client: TestClient, email: str) -> dict[str, str]:
    answer = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def test_analytics_api(client: TestClient, platform_db: tuple[PipelineSettings, list[str]]) -> None:
    _, items = platform_db
    analyst = token(client, "ana@example.com")

    daily = client.get("/v1/analytics/daily", headers=analyst).json()
    assert [(r["day"], r["impressions"], r["clicks"], r["conversions"]) for r in daily["data"]] == [
        (D1.isoformat(), 5, 3, 2),
        (D2.isoformat(), 1, 0, 0),
    ]
    assert daily["data"][0]["ctr"] == pytest.approx(0.6) and daily["data"][1]["ctr"] == 0
    assert daily["data"][0]["conversion_rate"] == pytest.approx(2 / 3)

    arms = client.get("/v1/analytics/arms", headers=analyst).json()["data"]
    by_arm = {(r["model_version"], r["arm"]): r for r in arms}
    assert set(by_arm) == {("v1", "control"), ("v2", "challenger")}
    control = by_arm["v1", "control"]
    assert (control["impressions"], control["clicks"]) == (4, 2)
    assert (control["ctr_low"], control["ctr_high"]) == pytest.approx(wilson_interval(2, 4))

    positions = client.get("/v1/analytics/positions", headers=analyst).json()["data"]
    assert [(r["position"], r["impressions"], r["clicks"]) for r in positions] == [(0, 3, 1), (1, 2, 2), (2, 1, 0)]
    surfaces = client.get("/v1/analytics/surfaces", headers=analyst).json()["data"]
    assert [(r["surface"], r["impressions"], r["clicks"]) for r in surfaces] == [("explore", 2, 1), ("home", 4, 2)]

    # Filters: one day, one arm, one surface.
    one_day = client.get("/v1/analytics/daily", params={"from": D2.isoformat()}, headers=analyst).json()
    assert [r["day"] for r in one_day["data"]] == [D2.isoformat()]
    upto = client.get("/v1/analytics/conversion", params={"to": D1.isoformat()}, headers=analyst).json()
    assert (upto["impressions"], upto["clicks"], upto["conversions"], upto["window_days"]) == (5, 3, 2, 7)
    challenger = client.get("/v1/analytics/positions", params={"arm": "challenger"}, headers=analyst).json()
    assert [(r["position"], r["clicks"]) for r in challenger["data"]] == [(0, 0), (1, 1)]
    home = client.get("/v1/analytics/top-items", params={"surface": "home"}, headers=analyst).json()["data"]
    assert [r["item_id"] for r in home] == [items[0], items[1], items[2]]
    assert home[0]["impressions"] == 2 and home[0]["clicks"] == 1 and home[0]["title"]
    nothing = client.get("/v1/analytics/arms", params={"arm": "nobody"}, headers=analyst).json()
    assert nothing == {"data": [], "count": 0}

    top = client.get("/v1/analytics/top-items", params={"limit": 2}, headers=analyst).json()["data"]
    assert [r["clicks"] for r in top] == [1, 1] and len(top) == 2

    coverage = client.get("/v1/analytics/coverage", headers=analyst).json()
    assert coverage["items_served"] == 4 and coverage["catalogue_items"] == len(items)
    assert coverage["coverage"] == pytest.approx(4 / len(items))
    assert [(d["day"], d["items_served"]) for d in coverage["data"]] == [(D1.isoformat(), 4), (D2.isoformat(), 1)]

    options = client.get("/v1/analytics/options", headers=analyst).json()
    assert options == {
        "first_day": D1.isoformat(),
        "last_day": D2.isoformat(),
        "model_versions": ["v1", "v2"],
        "arms": ["challenger", "control"],
        "surfaces": ["explore", "home"],
    }
    assert client.get("/v1/analytics/daily", headers=token(client, "ada@example.com")).status_code == 200


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"from": "2026-13-01"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"from": D2.isoformat(), "to": D1.isoformat()}, "from"),
        ({"arm": ""}, "arm"),
        ({"surface": "x" * 65}, "surface"),
    ],
)
def test_bad_filters_are_422(client: TestClient, params: dict[str, str], loc: str) -> None:
    answer = client.get("/v1/analytics/daily", params=params, headers=token(client, "ana@example.com"))
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "validation_error" and loc in error["message"]


def test_only_analysts_and_admins(client: TestClient) -> None:
    for path in ("daily", "arms", "positions", "surfaces", "top-items", "coverage", "conversion", "options"):
        anonymous = client.get(f"/v1/analytics/{path}")
        assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"
        plain = client.get(f"/v1/analytics/{path}", headers=token(client, "al@example.com"))
        assert plain.status_code == 403 and plain.json()["error"]["code"] == "forbidden"


def test_dashboard_page_and_local_chart_code(client: TestClient) -> None:
    page = client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert 'src="/dashboard/assets/plotly.min.js"' in page.text and "http" not in page.text.split("<body")[0]
    plotly = client.get("/dashboard/assets/plotly.min.js")
    assert plotly.status_code == 200 and "plotly.js" in plotly.text[:500]
    assert client.get("/dashboard/assets/dashboard.js").status_code == 200
    assert client.get("/dashboard/assets/..%2Fapp.py").status_code in (404, 422)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_answers_agree_with_the_document(client: TestClient, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
    headers = token(client, "ana@example.com")
    failures: list[str] = []
    for path in ("/v1/analytics/daily", "/v1/analytics/arms", "/v1/analytics/top-items", "/v1/analytics/coverage"):
        operation = schema[path]["GET"]

        @given(case=operation.as_strategy(generation_mode=mode))
        @examples(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            answer = client.request(case.method, case.formatted_path, params=case.query, headers=headers)
            try:
                case.validate_response(answer, checks=[status_code_conformance, response_schema_conformance])
            except FailureGroup as group:
                failures.extend(f"{case.path} {case.query}: {str(exc)[:300]}" for exc in group.exceptions)
            assert answer.status_code < 500, answer.text

        check()
    assert failures == []
