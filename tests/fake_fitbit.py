"""A local fake of the Fitbit Web API (the parts the health sync calls), for tests and trying the sync by hand.

Speaks Fitbit's shapes: `POST /oauth2/token` (HTTP Basic client credentials, grant_type=refresh_token;
every refresh token works once and is rotated; a revoked one answers 400 invalid_grant), and the daily
activity, sleep and heart-rate endpoints behind a Bearer token (401 expired_token / invalid_token).
A user can be told to answer 500 or to hang. Values are a function of (user, day): `expected_day`.

    python tests/fake_fitbit.py 8765   # serves one user with tokens access-demo / refresh-demo
"""

import base64
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

CLIENT_ID, CLIENT_SECRET = "fake-client-id", "fake-client-secret"
TOKEN_TTL_S = 28800


def expected_day(user: str, day: date) -> dict[str, Any]:
    """The canonical values the sync must store for a user's day (see `fitbit_answers`)."""
    bump = sum(map(ord, user)) % 50
    values: dict[str, Any] = {
        "steps": 4000 + 100 * day.day + bump,
        "active_minutes": 20 + 10 + day.day % 5,
        "resting_hr": 55.0 + day.day % 7,
    }
    if day.day % 4:  # every fourth day: no sleep record
        values["sleep_minutes"] = 400 + day.day
    return values


def fitbit_answers(user: str, day: date) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The three Web API bodies of a day, in Fitbit's shapes."""
    v = expected_day(user, day)
    activity = {
        "activities": [],
        "goals": {"steps": 10000},
        "summary": {
            "steps": v["steps"],
            "veryActiveMinutes": 20,
            "fairlyActiveMinutes": v["active_minutes"] - 20,
            "lightlyActiveMinutes": 180,
            "sedentaryMinutes": 700,
            "caloriesOut": 2300,
            "restingHeartRate": v["resting_hr"],
        },
    }
    asleep = v.get("sleep_minutes")
    sleep = {
        "sleep": [{"dateOfSleep": day.isoformat(), "minutesAsleep": asleep, "isMainSleep": True}] if asleep else [],
        "summary": {
            "totalMinutesAsleep": asleep or 0,
            "totalSleepRecords": 1 if asleep else 0,
            "totalTimeInBed": (asleep or 0) + 25 if asleep else 0,
        },
    }
    heart = {
        "activities-heart": [
            {
                "dateTime": day.isoformat(),
                "value": {"customHeartRateZones": [], "heartRateZones": [], "restingHeartRate": int(v["resting_hr"])},
            }
        ]
    }
    return activity, sleep, heart


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"errors": [{"errorType": kind, "message": message}], "success": False}, status_code=status)


@dataclass
class FakeFitbit:
    access: dict[str, str] = field(default_factory=dict)  # token -> user
    expired: set[str] = field(default_factory=set)
    refresh: dict[str, str] = field(default_factory=dict)  # unused refresh token -> user
    revoked: set[str] = field(default_factory=set)
    failing: set[str] = field(default_factory=set)  # users answered with 500
    hanging: set[str] = field(default_factory=set)  # users answered after HANG_S
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, user)
    refreshes: int = 0
    hang_s: float = 3.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _n: int = 0

    def grant(self, user: str, *, expired: bool = False) -> tuple[str, str]:
        """A fresh token pair for `user` (the access token already expired if asked)."""
        with self._lock:
            self._n += 1
            access, refresh = f"access-{user}-{self._n}", f"refresh-{user}-{self._n}"
            self.access[access], self.refresh[refresh] = user, user
            if expired:
                self.expired.add(access)
        return access, refresh

    def revoke(self, user: str) -> None:
        """The user took the app's access away: every token of theirs stops working."""
        with self._lock:
            for token in [t for t, u in self.refresh.items() if u == user]:
                self.revoked.add(token)
                del self.refresh[token]
            for token in [t for t, u in self.access.items() if u == user]:
                self.expired.add(token)

    def of(self, user: str) -> list[str]:
        return [path for path, u in self.requests if u == user]

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/oauth2/token")
        async def token(request: Request) -> JSONResponse:
            expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if request.headers.get("authorization") != f"Basic {expected}":
                return _error(401, "invalid_client", "Invalid authorization header format.")
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            if form.get("grant_type") != "refresh_token":
                return _error(400, "unsupported_grant_type", "The grant type is not supported.")
            with self._lock:
                user = self.refresh.pop(form.get("refresh_token", ""), None)
                self.requests.append(("/oauth2/token", user))
                self.refreshes += 1
            if user is None:
                return _error(400, "invalid_grant", f"Refresh token invalid: {form.get('refresh_token')}.")
            access, refresh = self.grant(user)
            return JSONResponse(
                {
                    "access_token": access,
                    "expires_in": TOKEN_TTL_S,
                    "refresh_token": refresh,
                    "scope": "activity heartrate sleep",
                    "token_type": "Bearer",
                    "user_id": user,
                }
            )

        def answer(request: Request, day: str, part: int) -> JSONResponse:
            bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
            user = self.access.get(bearer)
            with self._lock:
                self.requests.append((request.url.path, user))
            if user is None:
                return _error(401, "invalid_token", f"Access token invalid: {bearer}")
            if bearer in self.expired:
                return _error(401, "expired_token", f"Access token expired: {bearer}")
            if user in self.failing:
                return JSONResponse({"errors": [{"errorType": "system", "message": "boom"}]}, status_code=500)
            if user in self.hanging:
                time.sleep(self.hang_s)
            return JSONResponse(fitbit_answers(user, date.fromisoformat(day))[part])

        @app.get("/1/user/-/activities/date/{day}.json")
        def activity(request: Request, day: str) -> JSONResponse:
            return answer(request, day, 0)

        @app.get("/1.2/user/-/sleep/date/{day}.json")
        def sleep(request: Request, day: str) -> JSONResponse:
            return answer(request, day, 1)

        @app.get("/1/user/-/activities/heart/date/{day}/1d.json")
        def heart(request: Request, day: str) -> JSONResponse:
            return answer(request, day, 2)

        return app


if __name__ == "__main__":
    import uvicorn

    fake = FakeFitbit()
    fake.access["access-demo"], fake.refresh["refresh-demo"] = "demo", "demo"
    fake.expired.add("access-demo")  # the first sync has to refresh
    fake.refresh["refresh-revoked"] = "gone"
    fake.revoke("gone")
    fake.access["access-broken"] = "broken"
    fake.failing.add("broken")
    uvicorn.run(fake.app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
