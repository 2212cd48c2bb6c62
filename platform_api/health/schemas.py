"""Request and response bodies of health integrations and metrics."""

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from platform_api.events.schemas import Day
from platform_api.health.units import Metric

Provider = Literal["fitbit", "apple_health", "google_fit", "garmin", "oura"]


class IntegrationCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "provider": "fitbit",
                    "access_token": "eyJhbGciOi...",
                    "refresh_token": "c8a1...",
                    "expires_at": "2026-11-22T10:00:00Z",
                }
            ]
        },
    )

    provider: Provider
    access_token: str = Field(min_length=1, max_length=8000)
    refresh_token: str | None = Field(None, min_length=1, max_length=8000)
    expires_at: datetime | None = None


class IntegrationPublic(BaseModel):
    """Never carries the tokens: they stay encrypted in the database."""

    id: str
    provider: str
    linked_at: datetime
    last_synced_at: datetime | None
    token_expires_at: datetime | None
    status: str = Field(
        description="active, or revoked: the provider refused the app's access; link again to resume syncing"
    )
    sync_error: str | None = Field(description="what the last scheduled sync ran into, if it failed")
    sync_failures: int = Field(description="scheduled syncs failed in a row")


class IntegrationsPublic(BaseModel):
    data: list[IntegrationPublic]
    count: int


class MeasurementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    day: Day
    metric: Metric
    value: float = Field(ge=0, allow_inf_nan=False)
    unit: str | None = Field(None, max_length=16, description="default: the canonical unit (count, min, bpm, kg)")


class SyncCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "measurements": [
                        {"day": "2026-11-20", "metric": "steps", "value": 8412},
                        {"day": "2026-11-20", "metric": "sleep", "value": 7.5, "unit": "h"},
                        {"day": "2026-11-20", "metric": "weight", "value": 172.4, "unit": "lb"},
                        {"day": "2026-11-20", "metric": "resting_hr", "value": 58, "unit": "bpm"},
                    ]
                }
            ]
        },
    )

    measurements: list[MeasurementIn] = Field(min_length=1, max_length=5000)


class SyncPublic(BaseModel):
    received: int = Field(description="measurements in the request")
    days: int = Field(description="distinct days they cover")
    changed: int = Field(description="days whose stored values changed (one health_metric.synced each)")
    unchanged: int
    last_synced_at: datetime


class MetricDayPublic(BaseModel):
    day: date
    source: str
    steps: int | None
    active_minutes: int | None
    resting_hr: float | None
    sleep_minutes: int | None
    weight_kg: float | None


class MetricDaysPublic(BaseModel):
    data: list[MetricDayPublic]
    count: int
