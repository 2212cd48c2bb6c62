"""GET /v1/analytics/*: the product dashboard's series, read from the aggregate tables `fitrec analytics
aggregate` (and the worker's `analytics` job) write; analysts, admins or a key with `analytics:read`."""

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from platform_api.analytics import read
from platform_api.analytics.schemas import (
    ArmsPublic,
    ConversionPublic,
    CoveragePublic,
    DailyPublic,
    Metrics,
    OptionsPublic,
    PositionsPublic,
    SurfacesPublic,
    TopItemsPublic,
)
from platform_api.analytics.tables import CONVERSION_DAYS
from platform_api.auth.principal import Principal
from platform_api.deps import CurrentPrincipal, SessionDep
from platform_api.errors import ERROR_SCHEMA, ApiError

SCOPE = "analytics:read"


def analytics_reader(principal: CurrentPrincipal) -> Principal:
    if principal.role in ("analyst", "admin") or principal.has_scope(SCOPE):
        return principal
    if principal.kind == "service":
        raise ApiError(403, f"API key scope {SCOPE!r} required", code="insufficient_scope")
    raise ApiError(403, "analysts and admins only")


Label = Annotated[str | None, Query(min_length=1, max_length=64)]


def filters(
    start: Annotated[
        date | None, Query(alias="from", description="first day (UTC, inclusive), e.g. 2026-11-01")
    ] = None,
    end: Annotated[date | None, Query(alias="to", description="last day (UTC, inclusive)")] = None,
    arm: Annotated[Label, Query(description="only this A/B arm, e.g. control")] = None,
    surface: Annotated[Label, Query(description="only this surface, e.g. home")] = None,
) -> read.Filters:
    if start is not None and end is not None and start > end:
        msg = "must not be after 'to'"
        raise ApiError(422, f"query.from: {msg}", details=[{"loc": "query.from", "msg": msg, "type": "value_error"}])
    return read.Filters(start=start, end=end, arm=arm, surface=surface)


FiltersDep = Annotated[read.Filters, Depends(filters)]
router = APIRouter(
    prefix="/v1/analytics",
    tags=["analytics"],
    dependencies=[Depends(analytics_reader)],
    responses={401: ERROR_SCHEMA, 403: ERROR_SCHEMA, 422: ERROR_SCHEMA, 503: ERROR_SCHEMA},
)


@router.get("/daily", response_model=DailyPublic)
def daily(session: SessionDep, f: FiltersDep) -> DailyPublic:
    """Impressions, clicks, CTR and conversions per day the items were shown."""
    data = read.breakdown(session, f, "day")
    return DailyPublic(data=data, count=len(data))


@router.get("/arms", response_model=ArmsPublic)
def arms(session: SessionDep, f: FiltersDep) -> ArmsPublic:
    """The same per model version and A/B arm, with 95% Wilson intervals of CTR and conversion."""
    data = read.breakdown(session, f, "arm")
    return ArmsPublic(data=data, count=len(data))


@router.get("/positions", response_model=PositionsPublic)
def positions(session: SessionDep, f: FiltersDep) -> PositionsPublic:
    """The same per slot of the slate (0 = first)."""
    data = read.breakdown(session, f, "position")
    return PositionsPublic(data=data, count=len(data))


@router.get("/surfaces", response_model=SurfacesPublic)
def surfaces(session: SessionDep, f: FiltersDep) -> SurfacesPublic:
    """The same per surface of the app where the slate was shown."""
    data = read.breakdown(session, f, "surface")
    return SurfacesPublic(data=data, count=len(data))


@router.get("/top-items", response_model=TopItemsPublic)
def top_items(
    session: SessionDep, f: FiltersDep, limit: Annotated[int, Query(ge=1, le=100, description="how many")] = 10
) -> TopItemsPublic:
    """The most clicked items."""
    data = read.top_items(session, f, limit=limit)
    return TopItemsPublic(data=data, count=len(data))


@router.get("/coverage", response_model=CoveragePublic)
def coverage(session: SessionDep, f: FiltersDep) -> CoveragePublic:
    """How much of the catalogue was shown: distinct items served, over the period and per day."""
    return read.coverage(session, f)


@router.get("/conversion", response_model=ConversionPublic)
def conversion(session: SessionDep, f: FiltersDep) -> ConversionPublic:
    """From impression to click to completed workout, over the period."""
    shown, clicked, converted = read.totals(session, f)
    metrics = Metrics.of(shown, clicked, converted)
    return ConversionPublic(**metrics.model_dump(), window_days=CONVERSION_DAYS)


@router.get("/options", response_model=OptionsPublic)
def options(session: SessionDep) -> OptionsPublic:
    """What the filters can choose: the aggregated days, model versions, arms and surfaces."""
    return read.options(session)
