"""FastAPI dependency aliases shared by every platform router."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from platform_api.runtime import Platform


def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def get_session(request: Request) -> Iterator[Session]:
    session = get_platform(request).sessions()
    try:
        yield session
    finally:
        session.close()


PlatformDep = Annotated[Platform, Depends(get_platform)]
SessionDep = Annotated[Session, Depends(get_session)]
