"""Settings of the pipelines (CLI, scheduled jobs)."""

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
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
    # The retraining pipeline's gate (`fitrec pipeline retrain`, and the worker's `retrain` job: the same
    # variables there, hence the explicit names).
    promote_metric: str = Field(
        "ndcg@10",
        validation_alias=AliasChoices("FITREC_PIPELINE_PROMOTE_METRIC"),
        description="held-out metric the gate compares (training's spelling)",
    )
    promote_margin: float = Field(
        0.005,
        validation_alias=AliasChoices("FITREC_PIPELINE_PROMOTE_MARGIN"),
        description="how much better than the champion a new model must be",
    )
    max_quarantine_share: float = Field(
        0.02,
        ge=0,
        le=1,
        validation_alias=AliasChoices("FITREC_PIPELINE_MAX_QUARANTINE_SHARE"),
        description="share of events quarantined since the last passing check that fails it",
    )
    min_fresh_holdout_days: float = Field(
        1.0,
        gt=0,
        validation_alias=AliasChoices("FITREC_PIPELINE_MIN_FRESH_HOLDOUT_DAYS"),
        description="shortest window after the champion's training data that is held out for both",
    )
    # `fitrec deploy sagemaker` (each also a command option).
    sagemaker_role: str | None = Field(None, description="execution role ARN of the SageMaker model")
    sagemaker_image: str | None = Field(None, description="serving image URI (it runs `fitrec serve-model`)")
    sagemaker_bucket: str | None = Field(None, description="S3 bucket the model archive is uploaded to")
    sagemaker_instance_type: str = Field("ml.m5.large", description="instance type of the endpoint")
    aws_region: str | None = Field(None, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))

    @property
    def lock_dir(self) -> Path:
        """Where the named locks of the embedded profile live (pipelines.locks)."""
        return self.data_dir / "locks"

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


class WorkerSettings(PipelineSettings):
    """`fitrec worker`: the background work's intervals and the scheduled jobs' cron expressions (UTC;
    5 fields, or 6 with seconds first; empty = the job is off)."""

    model_config = SettingsConfigDict(env_prefix="FITREC_WORKER_", extra="ignore")

    push_interval_s: float = Field(
        2.0, ge=0, description="how often new events are pushed into users' online features; 0 = never"
    )
    push_timeout_s: float = Field(5.0, gt=0, description="timeout of each push to the Redis online store")
    served_load_s: float = Field(
        2.0, ge=0, description="how often served slates are loaded into the event log as impressions; 0 = never"
    )
    email_relay_s: float = Field(30.0, ge=0, description="how often unsent outbox emails are retried; 0 = never")
    leader_poll_s: float = Field(5.0, gt=0, description="how often a standby worker tries to become the leader")
    retrain_cron: str = Field("0 3 * * *", description="the retraining pipeline (gate, promotion)")
    materialize_cron: str = Field("0 * * * *", description="incremental materialization of the online store")
    health_sync_cron: str = Field("0 2 * * *", description="pulling linked health providers")
    activity_summary_cron: str = Field("0 7 * * *", description="each active user's summary of yesterday")
    analytics_cron: str = Field("30 * * * *", description="the dashboard's aggregates of impressions and clicks")
    precompute_cron: str = Field("0 5 * * *", description="top-10 of every active user into the serving cache")

    @field_validator(
        "retrain_cron",
        "materialize_cron",
        "health_sync_cron",
        "activity_summary_cron",
        "analytics_cron",
        "precompute_cron",
    )
    @classmethod
    def _cron(cls, value: str) -> str:
        if value.strip():
            from pipelines.worker import cron_trigger

            cron_trigger(value)  # a bad expression fails at start-up, not at 3 a.m.
        return value.strip()
