"""Health integrations and daily metrics over HTTP."""

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from platform_api.auth.ownership import get_owned
from platform_api.boundary import RowId
from platform_api.deps import CurrentUser, PlatformDep, SessionDep
from platform_api.errors import ERROR_SCHEMA
from platform_api.health import service
from platform_api.health.crypto import TokenCipher
from platform_api.health.schemas import (
    IntegrationCreate,
    IntegrationPublic,
    IntegrationsPublic,
    MetricDayPublic,
    MetricDaysPublic,
    SyncCreate,
    SyncPublic,
)
from platform_api.health.tables import HealthIntegration

router = APIRouter(prefix="/v1/health", tags=["health"])


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error responses a route documents, each in the one error shape."""
    return {code: ERROR_SCHEMA for code in codes}


def integration_public(i: HealthIntegration) -> IntegrationPublic:
    return IntegrationPublic(
        id=i.id,
        provider=i.provider,
        linked_at=i.linked_at,
        last_synced_at=i.last_synced_at,
        token_expires_at=i.token_expires_at,
        status=i.status,
        sync_error=i.sync_error,
        sync_failures=i.sync_failures,
    )


@router.post(
    "/integrations",
    status_code=201,
    response_model=IntegrationPublic,
    responses={**errors(401, 422), 200: {"model": IntegrationPublic, "description": "re-linked: tokens replaced"}},
)
def link_integration(
    body: IntegrationCreate, user: CurrentUser, session: SessionDep, platform: PlatformDep, response: Response
) -> IntegrationPublic:
    """Link a health provider; its tokens are stored encrypted (200 when re-linking replaces them)."""
    cipher = TokenCipher(platform.settings.encryption_key.get_secret_value())
    integration, created = service.link_integration(session, user_id=user.id, body=body, cipher=cipher)
    if not created:
        response.status_code = 200
    return integration_public(integration)


@router.get("/integrations", response_model=IntegrationsPublic, responses=errors(401))
def list_integrations(user: CurrentUser, session: SessionDep) -> IntegrationsPublic:
    """List the caller's linked providers with their last sync time."""
    rows = service.list_integrations(session, user_id=user.id)
    return IntegrationsPublic(data=[integration_public(i) for i in rows], count=len(rows))


@router.get("/integrations/{integration_id}", response_model=IntegrationPublic, responses=errors(401, 404))
def get_integration(integration_id: RowId, user: CurrentUser, session: SessionDep) -> IntegrationPublic:
    """Read one of the caller's integrations (404 for anyone else's)."""
    return integration_public(get_owned(session, HealthIntegration, integration_id, user, what="integration"))


@router.delete("/integrations/{integration_id}", status_code=204, responses=errors(401, 404))
def unlink_integration(integration_id: RowId, user: CurrentUser, session: SessionDep) -> Response:
    """Unlink a provider and delete its tokens (metrics already synced stay)."""
    service.unlink_integration(
        session, integration=get_owned(session, HealthIntegration, integration_id, user, what="integration")
    )
    return Response(status_code=204)


@router.post("/integrations/{integration_id}/sync", response_model=SyncPublic, responses=errors(401, 404, 422))
def sync(integration_id: RowId, body: SyncCreate, user: CurrentUser, session: SessionDep) -> SyncPublic:
    """Ingest a batch of daily measurements in any supported unit (health_metric.synced per changed day)."""
    integration = get_owned(session, HealthIntegration, integration_id, user, what="integration")
    result = service.sync_metrics(session, integration=integration, measurements=body.measurements)
    assert integration.last_synced_at is not None
    return SyncPublic(
        received=len(body.measurements),
        days=result.days,
        changed=result.changed,
        unchanged=result.unchanged,
        last_synced_at=integration.last_synced_at,
    )


@router.get("/metrics", response_model=MetricDaysPublic, responses=errors(401, 422))
def list_metrics(
    user: CurrentUser,
    session: SessionDep,
    start: date | None = None,
    end: date | None = None,
    source: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 366,
) -> MetricDaysPublic:
    """Read the caller's daily metrics in canonical units, newest day first."""
    rows = service.list_metric_days(session, user_id=user.id, start=start, end=end, source=source, limit=limit)
    return MetricDaysPublic(
        data=[
            MetricDayPublic(
                day=r.day,
                source=r.source,
                steps=r.steps,
                active_minutes=r.active_minutes,
                resting_hr=r.resting_hr,
                sleep_minutes=r.sleep_minutes,
                weight_kg=r.weight_kg,
            )
            for r in rows
        ],
        count=len(rows),
    )
