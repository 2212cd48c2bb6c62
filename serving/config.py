"""Settings of the serving app."""

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from platform_api.config import DEV_PLACEHOLDER, PlatformSettings, default_data_dir

if TYPE_CHECKING:
    from feast import FeatureStore
    from sqlalchemy.orm import Session, sessionmaker

    from platform_api.catalogue.service import Item
    from serving.ranking.factory import Features
    from serving.ranking.model_holder import ModelArms
    from serving.ranking.path import RankingPath
    from serving.ranking.request_ids import RequestIds

MIN_SECRET_BYTES = 32


class ServingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FITREC_SERVING_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir, validation_alias=AliasChoices("FITREC_DATA_DIR"))
    database_url: str | None = Field(None, validation_alias=AliasChoices("DATABASE_URL"))
    redis_url: str | None = Field(None, validation_alias=AliasChoices("REDIS_URL"))
    # Feast project: keys in a shared Redis online store are namespaced by it.
    feast_project: str = Field(
        "fitrec", pattern=r"^[a-z][a-z0-9_]*$", validation_alias=AliasChoices("FITREC_FEAST_PROJECT")
    )
    mlflow_tracking_uri: str | None = Field(None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI"))
    model_name: str = "fitrec-ranker"
    model_alias: str = "champion"
    challenger_alias: str = "challenger"
    challenger_share: float = Field(
        0.0, ge=0.0, le=1.0, description="share of users the A/B split sends to the challenger alias; 0 = no split"
    )
    experiment: str = Field(
        "ranker", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="the A/B experiment's name (it salts the split)"
    )
    recent_window_days: float = Field(
        7.0, ge=0, description="items completed or dismissed this recently are never recommended"
    )
    max_per_category: int = Field(3, ge=1, description="most items of one category in a slate")
    max_level_above: int = Field(1, ge=0, le=2, description="how many levels above the user's an item may be")
    near_cache_ttl_s: float = Field(
        30.0,
        ge=0,
        description="seconds a slate read from Redis stays in this process too (0 = always ask Redis); the worker's"
        " signals drop a stale copy within signal_poll_s, this bounds a copy no signal reaches",
    )
    signal_poll_s: float = Field(
        1.0,
        ge=0,
        description="how often the worker's signals (stale slates, a changed catalogue) are read; 0 = never",
    )
    cache_ttl_s: int = Field(300, ge=1, description="seconds a computed top-k stays cached")
    cache_prefix: str = "fitrec:"
    shared_cache_url: str | None = Field(
        None,
        validation_alias=AliasChoices("FITREC_SERVING_CACHE_URL"),
        description="the top-k cache's Redis (redis://, rediss://, redis+cluster://) when it is not REDIS_URL's "
        "(which also holds the online features); unset: REDIS_URL, else in-process",
    )
    cache_max_entries: int = Field(100_000, ge=1, description="in-process cache size (embedded default)")
    online_timeout_ms: int = Field(
        250, ge=1, le=10_000, description="timeout of connecting to and each read from the Redis online store"
    )
    cache_timeout_ms: int = Field(50, ge=1, le=5000, description="timeout of each Redis cache call")
    breaker_failures: int = Field(
        3, ge=1, description="failed calls in a row that open a circuit (Redis cache, ranking path)"
    )
    breaker_reset_s: float = Field(
        5.0, gt=0, description="seconds an open circuit waits before trying its dependency again"
    )
    rank_timeout_ms: int = Field(
        500, ge=1, description="longest an uncached ranking may take before popularity answers instead"
    )
    health_timeout_ms: int = Field(1000, ge=1, description="timeout of each dependency check of /health/ready")
    candidates: int = Field(500, ge=10, le=5000, description="candidates scored per uncached request")
    scorer_url: str = Field(
        "inprocess://",
        description="where candidates are scored: inprocess:// (the loaded model, in this process) or "
        "sagemaker://<endpoint-name>?region=eu-west-1&timeout_ms=150 (a SageMaker endpoint serving the packaged "
        "model, see `fitrec serve-model`; timeout_ms bounds connecting and each read, default 150; in-process "
        "scores answer whenever the endpoint fails, times out or answers wrongly)",
    )
    model_refresh_s: int = Field(60, ge=0, description="how often to check the alias for a new version; 0 = never")
    served_flush_s: float = Field(1.0, gt=0, description="how often served slates are written to the served log")
    environment: str = Field("dev", validation_alias=AliasChoices("FITREC_ENV", "FITREC_SERVING_ENVIRONMENT"))
    # Signs request ids so feedback can refuse forged ones without storing any. Every API replica must hold
    # the same secret (and keep it across restarts): an id one replica made is checked by another. In dev
    # the placeholder is the key, so local replicas agree; outside dev it is refused.
    request_id_secret: SecretStr = SecretStr(DEV_PLACEHOLDER)

    @model_validator(mode="after")
    def _refuse_dev_secret(self) -> "ServingSettings":
        """Outside dev the placeholder (public in the source) would let anyone forge request ids."""
        secret = self.request_id_secret.get_secret_value()
        if self.environment != "dev" and DEV_PLACEHOLDER in secret:
            raise ValueError("request_id_secret must be set outside dev (FITREC_SERVING_REQUEST_ID_SECRET)")
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"request_id_secret must be at least {MIN_SECRET_BYTES} bytes")
        return self

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.data_dir / 'mlflow.db'}"

    @property
    def served_log_dir(self) -> Path:
        return self.data_dir / "served"

    @property
    def cache_url(self) -> str:
        return self.shared_cache_url or self.redis_url or "memory://"

    def platform(self) -> PlatformSettings:
        return PlatformSettings(FITREC_DATA_DIR=self.data_dir, DATABASE_URL=self.database_url)

    # The parts of the ranking path these settings describe: the API (serving.state) and batch precompute
    # (pipelines.precompute) assemble theirs here, so both rank alike. Imported when called (Feast, MLflow).

    def open_features(self, items: "list[Item]") -> "tuple[FeatureStore | None, Features]":
        """The feature store and popularity, or what is missing and why (never raises)."""
        from features.postgres import is_postgres
        from serving.ranking.factory import open_features

        return open_features(
            items,
            data_dir=self.data_dir,
            redis_url=self.redis_url,
            project=self.feast_project,
            offline_url=self.database_url if is_postgres(self.database_url) else None,
            redis_timeout_s=self.online_timeout_ms / 1000,
        )

    def model_arms(self) -> "ModelArms":
        from serving.ranking.model_holder import ModelArms

        return ModelArms(
            tracking_uri=self.tracking_uri,
            name=self.model_name,
            champion_alias=self.model_alias,
            challenger_alias=self.challenger_alias,
            challenger_share=self.challenger_share,
            experiment=self.experiment,
        )

    def ranking_path(
        self, items: "list[Item]", features: "Features", sessions: "sessionmaker[Session]", *, scorer_url: str
    ) -> "RankingPath":
        from serving.ranking.factory import ranking_path, rule_settings

        return ranking_path(
            items,
            features,
            sessions=sessions,
            scorer_url=scorer_url,
            breaker_failures=self.breaker_failures,
            rules=rule_settings(
                recent_window_days=self.recent_window_days,
                max_level_above=self.max_level_above,
                max_per_category=self.max_per_category,
            ),
            n_candidates=self.candidates,
        )

    def request_ids(self) -> "RequestIds":
        from serving.ranking.request_ids import RequestIds

        return RequestIds(self.request_id_secret.get_secret_value().encode())


class ModelServerSettings(BaseSettings):
    """The model server (`fitrec serve-model`): the packaged model behind SageMaker's container contract."""

    model_config = SettingsConfigDict(env_prefix="FITREC_MODEL_SERVER_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir, validation_alias=AliasChoices("FITREC_DATA_DIR"))
    mlflow_tracking_uri: str | None = Field(None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI"))
    model_uri: str | None = Field(
        None,
        validation_alias=AliasChoices("FITREC_MODEL_URI"),
        description="an MLflow model URI (models:/fitrec-ranker@champion, models:/fitrec-ranker/3, resolved "
        "through the tracking URI) or a model folder; None: SageMaker's model folder (SM_MODEL_DIR)",
    )
    sm_model_dir: Path = Field(Path("/opt/ml/model"), validation_alias=AliasChoices("SM_MODEL_DIR"))

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.data_dir / 'mlflow.db'}"

    @property
    def resolved_model_uri(self) -> str:
        return self.model_uri or str(self.sm_model_dir)
