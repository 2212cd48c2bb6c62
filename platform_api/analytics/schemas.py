"""What the analytics API returns: counts, rates and their 95% Wilson intervals."""

from datetime import date

from pydantic import BaseModel, Field

from platform_api.analytics.stats import wilson_interval


class Metrics(BaseModel):
    impressions: int = Field(description="items shown")
    clicks: int = Field(description="shown items the user clicked")
    ctr: float | None = Field(description="click-through rate: clicks / impressions (null without impressions)")
    ctr_low: float | None = Field(description="lower end of the CTR's 95% Wilson interval")
    ctr_high: float | None = Field(description="upper end of the CTR's 95% Wilson interval")
    conversions: int = Field(description="clicked items whose workout the user then completed (within the window)")
    conversion_rate: float | None = Field(description="conversions / clicks (null without clicks)")
    conversion_low: float | None
    conversion_high: float | None

    @classmethod
    def of(cls, impressions: int, clicks: int, conversions: int, **keys: object) -> "Metrics":
        ctr_ci = wilson_interval(clicks, impressions)
        conv_ci = wilson_interval(conversions, clicks)
        return cls(
            impressions=impressions,
            clicks=clicks,
            ctr=clicks / impressions if impressions else None,
            ctr_low=ctr_ci and ctr_ci[0],
            ctr_high=ctr_ci and ctr_ci[1],
            conversions=conversions,
            conversion_rate=conversions / clicks if clicks else None,
            conversion_low=conv_ci and conv_ci[0],
            conversion_high=conv_ci and conv_ci[1],
            **keys,
        )


class DayMetrics(Metrics):
    day: date


class ArmMetrics(Metrics):
    model_version: str
    arm: str


class PositionMetrics(Metrics):
    position: int = Field(description="slot in the slate, 0 = first")


class SurfaceMetrics(Metrics):
    surface: str


class DailyPublic(BaseModel):
    data: list[DayMetrics]
    count: int


class ArmsPublic(BaseModel):
    data: list[ArmMetrics]
    count: int


class PositionsPublic(BaseModel):
    data: list[PositionMetrics]
    count: int


class SurfacesPublic(BaseModel):
    data: list[SurfaceMetrics]
    count: int


class TopItem(BaseModel):
    item_id: str
    title: str | None = Field(description="null when the item left the catalogue")
    kind: str | None = Field(description="plan, exercise_guide, video or article")
    impressions: int
    clicks: int
    ctr: float | None
    conversions: int


class TopItemsPublic(BaseModel):
    data: list[TopItem]
    count: int


class CoverageDay(BaseModel):
    day: date
    items_served: int
    catalogue_items: int
    coverage: float | None


class CoveragePublic(BaseModel):
    items_served: int = Field(description="distinct items shown at least once in the period")
    catalogue_items: int = Field(description="items in the catalogue (the largest count of the period)")
    coverage: float | None = Field(description="items_served / catalogue_items")
    data: list[CoverageDay]
    count: int


class ConversionPublic(Metrics):
    window_days: int = Field(description="a click converts when its workout is completed by this many days after")


class OptionsPublic(BaseModel):
    first_day: date | None
    last_day: date | None
    model_versions: list[str]
    arms: list[str]
    surfaces: list[str]
