"""The Fitbit Web API as the health sync uses it: token refresh and one day of activity, sleep and heart rate.

- `POST {base}/oauth2/token` (grant_type=refresh_token, HTTP Basic client id and secret): Fitbit rotates
  the refresh token on every use, so the caller must store the new pair before anything else can fail.
- `GET {base}/1/user/-/activities/date/{day}.json`, `GET {base}/1.2/user/-/sleep/date/{day}.json`,
  `GET {base}/1/user/-/activities/heart/date/{day}/1d.json` with the access token as a Bearer token.

Errors are sorted into what the sync does with them: `AccessDenied` (401: refresh and retry once),
`Revoked` (the refresh token is refused: stop until the user links again), `ProviderUnavailable`
(5xx, 429, timeouts, unreadable answers: try again on the next run).
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from platform_api.health.fitbit import MINUTES_PER_DAY


class ProviderError(Exception):
    pass


class AccessDenied(ProviderError):
    """The access token was refused (expired or invalid)."""


class Revoked(ProviderError):
    """The refresh token was refused: the user revoked the app's access, or the token was used up."""


class ProviderUnavailable(ProviderError):
    """A failure that may pass: the next run tries again."""


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str
    expires_at: datetime


def _error_types(response: httpx.Response) -> list[str]:
    """Fitbit's error body: {"errors": [{"errorType": "expired_token", "message": ...}], "success": false}."""
    try:
        body = response.json()
    except ValueError:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    return [str(e.get("errorType")) for e in errors if isinstance(e, dict)] if isinstance(errors, list) else []


def _describe(response: httpx.Response) -> str:
    kinds = _error_types(response)
    return f"HTTP {response.status_code}" + (f" ({', '.join(kinds)})" if kinds else "")


class FitbitApi:
    def __init__(
        self, *, base_url: str, client_id: str, client_secret: str, timeout_s: float, client: httpx.Client | None = None
    ) -> None:
        self._client = client or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)
        self._auth = httpx.BasicAuth(client_id, client_secret)

    def close(self) -> None:
        self._client.close()

    def _send(self, request: httpx.Request, auth: httpx.Auth | None = None) -> httpx.Response:
        try:
            response = self._client.send(request, auth=auth)
        except httpx.HTTPError as exc:  # timeouts, refused connections, broken answers
            raise ProviderUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            retry = response.headers.get("Retry-After")
            raise ProviderUnavailable(_describe(response) + (f", retry after {retry} s" if retry else ""))
        return response

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError as exc:
            raise ProviderUnavailable(f"HTTP {response.status_code}: not JSON") from exc
        if not isinstance(body, dict):
            raise ProviderUnavailable(f"HTTP {response.status_code}: not a JSON object")
        return body

    def refresh(self, refresh_token: str, *, now: datetime | None = None) -> Tokens:
        """A new token pair; `Revoked` when the refresh token is refused (invalid_grant)."""
        now = now or datetime.now(UTC)
        request = self._client.build_request(
            "POST", "/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token}
        )
        response = self._send(request, auth=self._auth)
        if response.status_code in (400, 401):
            kinds = _error_types(response)
            if "invalid_grant" in kinds:
                raise Revoked(f"refresh token refused: {_describe(response)}")
            # invalid_client and the like: our configuration, not the user's link; retried after a fix.
            raise ProviderUnavailable(f"token refresh failed: {_describe(response)}")
        if response.status_code != 200:
            raise ProviderUnavailable(f"token refresh failed: {_describe(response)}")
        body = self._json(response)
        try:
            return Tokens(
                access_token=str(body["access_token"]),
                refresh_token=str(body["refresh_token"]),
                expires_at=now + timedelta(seconds=int(body["expires_in"])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderUnavailable(f"token refresh answer lacks {exc}") from exc

    def _get(self, access_token: str, path: str) -> dict[str, Any]:
        request = self._client.build_request("GET", path, headers={"Authorization": f"Bearer {access_token}"})
        response = self._send(request)
        if response.status_code == 401:
            raise AccessDenied(_describe(response))
        if response.status_code != 200:
            raise ProviderUnavailable(f"GET {path}: {_describe(response)}")
        return self._json(response)

    def day(self, access_token: str, day: date) -> dict[str, Any]:
        """One day's values in the canonical fields of `health_metric.synced` (absent: not measured)."""
        iso = day.isoformat()
        activity = self._get(access_token, f"/1/user/-/activities/date/{iso}.json")
        sleep = self._get(access_token, f"/1.2/user/-/sleep/date/{iso}.json")
        heart = self._get(access_token, f"/1/user/-/activities/heart/date/{iso}/1d.json")
        try:
            return normalise_day(activity, sleep, heart)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderUnavailable(f"unreadable answer for {iso}: {type(exc).__name__}: {exc}") from exc


def normalise_day(activity: dict[str, Any], sleep: dict[str, Any], heart: dict[str, Any]) -> dict[str, Any]:
    """The Web API's answers as the export import reads its files: steps; active minutes = very + fairly
    active; minutes asleep; resting heart rate. A day without the tracker worn (0 steps, a whole day
    sedentary) brings no activity, a night without a sleep record no sleep."""
    values: dict[str, Any] = {}
    summary = activity.get("summary") or {}
    if summary:
        steps = int(summary.get("steps", 0))
        sedentary = int(summary.get("sedentaryMinutes", 0))
        if not (steps == 0 and sedentary >= MINUTES_PER_DAY):
            values["steps"] = steps
            values["active_minutes"] = int(summary.get("veryActiveMinutes", 0)) + int(
                summary.get("fairlyActiveMinutes", 0)
            )
    sleep_summary = sleep.get("summary") or {}
    if sleep.get("sleep") or int(sleep_summary.get("totalSleepRecords", 0)):
        values["sleep_minutes"] = int(sleep_summary["totalMinutesAsleep"])
    for entry in heart.get("activities-heart") or []:
        resting = (entry.get("value") or {}).get("restingHeartRate")
        if resting is not None:
            values["resting_hr"] = round(float(resting), 2)
    return values
