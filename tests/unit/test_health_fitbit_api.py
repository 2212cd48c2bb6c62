"""The Fitbit Web API adapter's pure logic: how answers are normalised and how errors are sorted
(httpx's MockTransport stands in for the network; the integration tests use a real fake server)."""

from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from platform_api.health.fitbit_api import AccessDenied, FitbitApi, ProviderUnavailable, Revoked, normalise_day

DAY = date(2026, 11, 20)


def api(handler: Any) -> FitbitApi:
    client = httpx.Client(base_url="https://fitbit.test", transport=httpx.MockTransport(handler))
    return FitbitApi(base_url="https://fitbit.test", client_id="id", client_secret="secret", timeout_s=1, client=client)


def errors(kind: str) -> dict[str, Any]:
    return {"errors": [{"errorType": kind, "message": "..."}], "success": False}


def test_a_day_is_normalised_as_the_export_import_reads_it() -> None:
    activity = {"summary": {"steps": 8412, "veryActiveMinutes": 21, "fairlyActiveMinutes": 14, "sedentaryMinutes": 700}}
    sleep = {"sleep": [{"minutesAsleep": 431}], "summary": {"totalMinutesAsleep": 431, "totalSleepRecords": 1}}
    heart = {"activities-heart": [{"dateTime": "2026-11-20", "value": {"restingHeartRate": 58}}]}
    assert normalise_day(activity, sleep, heart) == {
        "steps": 8412,
        "active_minutes": 35,
        "sleep_minutes": 431,
        "resting_hr": 58.0,
    }
    # Tracker not worn, no sleep record, no resting rate yet: nothing (0 steps would read as a day without walking).
    not_worn = {"summary": {"steps": 0, "veryActiveMinutes": 0, "fairlyActiveMinutes": 0, "sedentaryMinutes": 1440}}
    no_sleep = {"sleep": [], "summary": {"totalMinutesAsleep": 0, "totalSleepRecords": 0}}
    no_rate = {"activities-heart": [{"dateTime": "2026-11-20", "value": {"heartRateZones": []}}]}
    assert normalise_day(not_worn, no_sleep, no_rate) == {}


def test_refresh_sends_basic_client_credentials_and_reads_the_rotated_pair() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"access_token": "a2", "refresh_token": "r2", "expires_in": 3600})

    now = datetime(2026, 11, 20, 8, tzinfo=UTC)
    tokens = api(handler).refresh("r1", now=now)
    assert (tokens.access_token, tokens.refresh_token, tokens.expires_at) == ("a2", "r2", now + timedelta(hours=1))
    (request,) = seen
    assert request.url.path == "/oauth2/token" and request.headers["authorization"] == "Basic aWQ6c2VjcmV0"
    assert request.content == b"grant_type=refresh_token&refresh_token=r1"


@pytest.mark.parametrize(
    ("answer", "error", "says"),
    [
        (httpx.Response(400, json=errors("invalid_grant")), Revoked, "invalid_grant"),
        (httpx.Response(401, json=errors("invalid_client")), ProviderUnavailable, "invalid_client"),  # our config
        (httpx.Response(429, headers={"Retry-After": "120"}), ProviderUnavailable, "retry after 120 s"),
        (httpx.Response(503, text="down"), ProviderUnavailable, "HTTP 503"),
        (httpx.Response(200, text="<html>"), ProviderUnavailable, "not JSON"),
    ],
)
def test_refresh_errors_are_sorted_into_revoked_or_try_again(
    answer: httpx.Response, error: type[Exception], says: str
) -> None:
    with pytest.raises(error, match=says):
        api(lambda _: answer).refresh("r1")


def test_data_calls_tell_a_refused_token_from_a_provider_failure() -> None:
    def refused(_: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json=errors("expired_token"))

    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    def unreadable(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"summary": {"steps": "many"}})

    with pytest.raises(AccessDenied, match="expired_token"):
        api(refused).day("a1", DAY)
    with pytest.raises(ProviderUnavailable, match="ReadTimeout"):
        api(timeout).day("a1", DAY)
    with pytest.raises(ProviderUnavailable, match="unreadable answer for 2026-11-20"):
        api(unreadable).day("a1", DAY)
