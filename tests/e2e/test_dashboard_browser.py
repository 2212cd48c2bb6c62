"""The product dashboard in headless Chromium, on simulated clicks plus slates served over HTTP:
events → `aggregate_analytics` → the app under uvicorn → /dashboard signs in, draws every chart from the
API's figures, and a filter changes them. Saves a screenshot (and copies it to FITREC_SCREENSHOT_DIR if set).

Chromium is Debian's (`/usr/bin/chromium`, `make test` installs it); without it the test skips, except
under CI, where it fails.
"""

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from support import serve_app

from pipelines.analytics import aggregate_analytics
from pipelines.config import PipelineSettings
from pipelines.load_served import load_served
from pipelines.simulate import simulate_into_platform
from platform_api.auth.api_keys import create_api_key
from platform_api.auth.service import create_user
from platform_api.catalogue.service import list_items, seed_catalogue
from platform_api.events.tables import EventLog
from platform_api.runtime import open_platform
from serving.app import create_app
from serving.config import ServingSettings

CHROMIUM = Path("/usr/bin/chromium")
EMAIL, PASSWORD = "analyst@example.com", "correct horse battery staple"
PLAIN = "member@example.com"
CHARTS = ("chart-daily", "chart-arms", "chart-positions", "chart-surfaces", "chart-funnel", "chart-coverage")
SERVED_SURFACE = "workouts_tab"


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium; `make test` does it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture
def dashboard_app(tmp_path: Path) -> Iterator[tuple[str, PipelineSettings]]:
    """Simulated users with their clicks, then slates on another surface served and clicked over HTTP, loaded
    by the worker's impression loader; aggregated; the app running on it."""
    settings = PipelineSettings(FITREC_DATA_DIR=tmp_path / "data", DATABASE_URL=None)
    platform = open_platform(settings.platform())
    with platform.sessions() as session:
        seed_catalogue(session)
        items = list_items(session)
        create_user(session, email=EMAIL, password=PASSWORD, role="analyst")
        create_user(session, email=PLAIN, password=PASSWORD, role="user")
        _, key = create_api_key(
            session, name="app backend", scopes=["recommendations:read", "feedback:write"], created_by=None
        )
        session.commit()
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    report = simulate_into_platform(platform.sessions, items=items, users=150, days=21, seed=4, end=end)
    assert report.stored > 5_000
    platform.close()

    serving = ServingSettings(FITREC_DATA_DIR=settings.data_dir, model_refresh_s=0, served_flush_s=0.2)
    with serve_app(create_app(serving)) as base:
        headers = {"X-API-Key": key}
        for n in range(1, 41):
            user = f"u-{n:05d}"
            answer = httpx.get(
                f"{base}/v1/users/{user}/recommendations",
                params={"k": 10, "surface": SERVED_SURFACE},
                headers=headers,
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            slate = answer.json()
            if n % 3 == 0:  # a third of them click their first item
                feedback = {
                    "request_id": slate["request_id"],
                    "item_id": slate["data"][0]["item_id"],
                    "action": "click",
                    "user_id": user,
                }
                sent = httpx.post(f"{base}/v1/recommendations/feedback", json=feedback, headers=headers, timeout=30)
                assert sent.status_code == 201, sent.text
    loaded = load_served(settings)  # after the app's last flush
    assert loaded.stored == 400 and not loaded.rejected
    summary = aggregate_analytics(settings)
    assert summary.impressions == report_impressions(settings) and summary.clicks > 0
    with serve_app(create_app(serving)) as base:
        yield base, settings


def report_impressions(settings: PipelineSettings) -> int:
    platform = open_platform(settings.platform())
    with platform.sessions() as session:
        count = session.scalar(select(func.count()).where(EventLog.event_type == "recommendation.impression"))
    platform.close()
    return int(count or 0)


def figures(base: str, path: str, **params: str) -> Any:
    token = httpx.post(f"{base}/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}).json()["access_token"]
    answer = httpx.get(f"{base}/v1/analytics/{path}", params=params, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    return answer.json()


def chart_data(page: Any, chart: str) -> list[dict[str, Any]]:
    """The traces plotly drew in `chart` (its graph div keeps them as `.data`)."""
    data: list[dict[str, Any]] = page.evaluate(
        "id => document.getElementById(id).data.map(t => ({type: t.type, x: Array.from(t.x || []), "
        "y: Array.from(t.y || [])}))",
        chart,
    )
    return data


def rendered(page: Any, count: int) -> None:
    # A selector, not wait_for_function: the page's CSP refuses the string evaluation that would need.
    page.wait_for_selector(f'body[data-renders="{count}"]', state="attached", timeout=30_000)


def sign_in(page: Any, email: str, password: str) -> None:
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("#sign-in-form button[type=submit]")


def save(page: Any, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    target = os.environ.get("FITREC_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


def test_dashboard_draws_and_filters(
    chromium: Path, dashboard_app: tuple[str, PipelineSettings], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    base, _ = dashboard_app
    daily = figures(base, "daily")["data"]
    surfaces = figures(base, "surfaces")["data"]
    assert {s["surface"] for s in surfaces} == {"home", SERVED_SURFACE}

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(chromium),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1360, "height": 900})
        requested: list[str] = []
        problems: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))

        page.goto(f"{base}/dashboard")
        # A member without the role is told why, and sees no figures.
        sign_in(page, PLAIN, PASSWORD)
        page.wait_for_selector("#sign-in-error:has-text('analyst or admin role')")
        assert page.locator("#dashboard").is_hidden()
        sign_in(page, EMAIL, "not the password")
        page.wait_for_selector("#sign-in-error:has-text('invalid email or password')")
        problems.clear()  # the browser logs the 403 and 401 above; from here on nothing may fail
        sign_in(page, EMAIL, PASSWORD)
        rendered(page, 1)

        # Every chart is drawn as plotly SVG, with the points of the API's series.
        for chart in CHARTS:
            assert page.locator(f"#{chart} .main-svg").count() > 0, chart
            assert page.locator(f"#{chart} .point, #{chart} .trace path").count() > 0, chart
        ctr_line = chart_data(page, "chart-daily")[1]
        assert ctr_line["x"] == [d["day"] for d in daily]
        assert ctr_line["y"] == pytest.approx([d["ctr"] for d in daily])
        assert len(daily) >= 20
        assert sorted(chart_data(page, "chart-surfaces")[0]["x"]) == ["home", SERVED_SURFACE]
        assert page.locator("#top-items tbody tr").count() == 10
        assert page.locator("#tile-impressions").inner_text() == f"{sum(d['impressions'] for d in daily):,}"
        save(page, tmp_path / "dashboard.png")

        # A surface filter re-queries: only the home screen's figures remain, and today's CTR changes.
        page.select_option("#surface", "home")
        rendered(page, 2)
        assert chart_data(page, "chart-surfaces")[0]["x"] == ["home"]
        home = figures(base, "daily", surface="home")["data"]
        assert chart_data(page, "chart-daily")[1]["y"] == pytest.approx([d["ctr"] for d in home])
        assert home[-1]["impressions"] < daily[-1]["impressions"]

        # A date range: the last week only.
        since = (datetime.fromisoformat(daily[-1]["day"]) - timedelta(days=6)).date().isoformat()
        page.fill("#from", since)
        page.click("#filters button[type=submit]")
        rendered(page, 3)
        assert chart_data(page, "chart-daily")[1]["x"] == [d["day"] for d in home if d["day"] >= since]
        save(page, tmp_path / "dashboard-filtered.png")

        # An arm: only the slates the app served (the champion arm, on their own surface, today).
        page.select_option("#surface", "")
        rendered(page, 4)
        page.select_option("#arm", "champion")
        rendered(page, 5)
        assert chart_data(page, "chart-arms")[0]["x"] == ["fallback:popularity · champion"]
        assert chart_data(page, "chart-surfaces")[0]["x"] == [SERVED_SURFACE]
        assert chart_data(page, "chart-daily")[1]["x"] == [daily[-1]["day"]]
        assert page.locator("#tile-impressions").inner_text() == "400"
        browser.close()

    assert not problems, problems
    # No CDN or any other host: the page, its script and plotly.js all come from the app.
    assert requested and all(url.startswith(base) for url in requested), requested
    assert (tmp_path / "dashboard.png").stat().st_size > 50_000
