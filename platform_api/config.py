"""Settings of the platform API (the transactional side)."""

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_PLACEHOLDER = "dev-only-change-me"


def default_data_dir() -> Path:
    return Path.cwd() / "fitrec-data"


class PlatformSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FITREC_PLATFORM_", extra="ignore")

    environment: str = Field("dev", validation_alias=AliasChoices("FITREC_ENV", "FITREC_PLATFORM_ENVIRONMENT"))
    data_dir: Path = Field(default_factory=default_data_dir, validation_alias=AliasChoices("FITREC_DATA_DIR"))
    database_url: str | None = Field(None, validation_alias=AliasChoices("DATABASE_URL", "FITREC_PLATFORM_DATABASE_URL"))
    jwt_secret: SecretStr = SecretStr(DEV_PLACEHOLDER)
    encryption_key: SecretStr = SecretStr(DEV_PLACEHOLDER)

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> "PlatformSettings":
        if self.environment != "dev":
            for name in ("jwt_secret", "encryption_key"):
                if getattr(self, name).get_secret_value() == DEV_PLACEHOLDER:
                    raise ValueError(f"{name} must be set outside dev (FITREC_PLATFORM_{name.upper()})")
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """The configured database, or the embedded SQLite file under the data folder."""
        if self.database_url:
            return normalise_db_url(self.database_url)
        return f"sqlite:///{self.data_dir / 'platform.db'}"


def normalise_db_url(url: str) -> str:
    # Plain postgresql:// URLs (as libpq tools write them) use the psycopg 3 driver.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@lru_cache
def get_settings() -> PlatformSettings:
    return PlatformSettings()
