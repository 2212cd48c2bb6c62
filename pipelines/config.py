"""Settings of the pipelines (CLI, scheduled jobs)."""

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from platform_api.config import PlatformSettings, default_data_dir


class PipelineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FITREC_PIPELINE_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir, validation_alias=AliasChoices("FITREC_DATA_DIR"))
    database_url: str | None = Field(None, validation_alias=AliasChoices("DATABASE_URL"))
    redis_url: str | None = Field(None, validation_alias=AliasChoices("REDIS_URL"))
    # Feast project: keys in a shared Redis online store are namespaced by it.
    feast_project: str = Field(
        "fitrec", pattern=r"^[a-z][a-z0-9_]*$", validation_alias=AliasChoices("FITREC_FEAST_PROJECT")
    )
    mlflow_tracking_uri: str | None = Field(None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI"))
    ray_address: str | None = Field(None, validation_alias=AliasChoices("RAY_ADDRESS"))
    model_name: str = "fitrec-ranker"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.data_dir / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str:
        return str(self.data_dir / "mlartifacts")

    @property
    def served_log_dir(self) -> Path:
        """Where the serving app appends the slates it serves (ServingSettings.served_log_dir)."""
        return self.data_dir / "served"

    @property
    def offline_dir(self) -> Path:
        return self.data_dir / "offline"

    def platform(self) -> PlatformSettings:
        return PlatformSettings(FITREC_DATA_DIR=self.data_dir, DATABASE_URL=self.database_url)
