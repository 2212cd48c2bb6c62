"""Every router of the platform API, mounted by the serving app."""

from fastapi import APIRouter

from platform_api.auth.router import admin_router as auth_admin_router
from platform_api.auth.router import router as auth_router
from platform_api.auth.router import users_router
from platform_api.email.router import router as mailbox_router
from platform_api.events.router import router as events_router

ROUTERS: list[APIRouter] = [
    events_router,
    auth_router,
    users_router,
    auth_admin_router,
    mailbox_router,
]
