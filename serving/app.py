"""The one FastAPI app: the platform API routers plus recommendations, health and docs."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from platform_api.auth.proxies import trust_forwarded_headers
from platform_api.boundary import install_input_guard
from platform_api.deps import document_user_only
from platform_api.errors import install_error_handlers
from platform_api.routers import ROUTERS
from serving.config import ServingSettings
from serving.metrics import install_metrics
from serving.routes import analytics, dashboard, feedback, health, items, recommendations


def create_app(settings: ServingSettings | None = None) -> FastAPI:
    settings = settings or ServingSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from serving.state import start_serving  # heavy imports (Feast, MLflow) only when the app starts

        state = start_serving(settings, metrics=metrics.ranking)
        app.state.serving = state
        app.state.platform = state.platform
        try:
            yield
        finally:
            await state.aclose()

    app = FastAPI(
        title="fitrec",
        version="0.1.0",
        summary="Recommendations and the platform API of a fitness app.",
        lifespan=lifespan,
    )
    metrics = install_metrics(app)
    install_input_guard(app, max_upload_bytes=settings.platform().max_upload_bytes)
    install_error_handlers(app)
    trust_forwarded_headers(app, settings.platform().trusted_proxies)
    app.include_router(health.router)
    app.include_router(recommendations.router)
    app.include_router(feedback.router)
    app.include_router(items.router)
    app.include_router(analytics.router)
    app.include_router(dashboard.router)
    for router in ROUTERS:
        document_user_only(router)
        app.include_router(router)
    return app
