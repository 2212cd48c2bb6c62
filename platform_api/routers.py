"""Every router of the platform API, mounted by the serving app."""

from fastapi import APIRouter

from platform_api.auth.router import admin_router as auth_admin_router
from platform_api.auth.router import router as auth_router
from platform_api.auth.router import users_router
from platform_api.content.router import router as content_router
from platform_api.email.router import router as mailbox_router
from platform_api.entitlements.router import router as entitlements_router
from platform_api.events.router import router as events_router
from platform_api.health.router import router as health_router
from platform_api.payments.router import router as payments_router
from platform_api.plans.router import router as plans_router
from platform_api.workouts.router import router as workouts_router

ROUTERS: list[APIRouter] = [
    events_router,
    auth_router,
    users_router,
    auth_admin_router,
    mailbox_router,
    plans_router,
    workouts_router,
    health_router,
    content_router,
    payments_router,
    entitlements_router,
]
