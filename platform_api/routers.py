"""Every router of the platform API, mounted by the serving app."""

from fastapi import APIRouter

from platform_api.events.router import router as events_router

ROUTERS: list[APIRouter] = [
    events_router,
]
