"""The platform's live resources, created once per process by the app's lifespan."""

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from platform_api.config import PlatformSettings
from platform_api.db import make_engine, make_session_factory
from platform_api.migrate import upgrade


@dataclass
class Platform:
    settings: PlatformSettings
    engine: Engine
    sessions: sessionmaker[Session]

    def close(self) -> None:
        self.engine.dispose()


def open_platform(settings: PlatformSettings, *, migrate: bool = True) -> Platform:
    engine = make_engine(settings.sqlalchemy_url)
    if migrate:
        upgrade(engine)
    return Platform(settings=settings, engine=engine, sessions=make_session_factory(engine))
