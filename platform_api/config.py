"""Settings of the platform API (the transactional side)."""

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_PLACEHOLDER = "dev-only-placeholder-change-me-0000000"  # >= 32 bytes: a valid HS256 key
# Secrets that must be real outside dev; the payment ones only when payments are live (always, outside dev).
REQUIRED_SECRETS = ("jwt_secret", "encryption_key")
LIVE_PAYMENT_SECRETS = ("stripe_api_key", "stripe_webhook_secret", "regional_api_key", "regional_webhook_secret")


class OidcProvider(BaseModel):
    """An OpenID Connect identity provider whose id_tokens the platform accepts."""

    issuers: list[str] = Field(min_length=1)
    audiences: list[str] = Field(min_length=1)  # the app's client ids at the provider
    jwks_uri: str


def default_data_dir() -> Path:
    return Path.cwd() / "fitrec-data"


class PlatformSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FITREC_PLATFORM_", extra="ignore")

    environment: str = Field("dev", validation_alias=AliasChoices("FITREC_ENV", "FITREC_PLATFORM_ENVIRONMENT"))
    data_dir: Path = Field(default_factory=default_data_dir, validation_alias=AliasChoices("FITREC_DATA_DIR"))
    database_url: str | None = Field(
        None, validation_alias=AliasChoices("DATABASE_URL", "FITREC_PLATFORM_DATABASE_URL")
    )
    jwt_secret: SecretStr = SecretStr(DEV_PLACEHOLDER)
    encryption_key: SecretStr = SecretStr(DEV_PLACEHOLDER)
    # --- auth ---
    access_token_ttl_s: int = Field(900, ge=60, le=3600)
    refresh_token_ttl_days: int = Field(30, ge=1, le=365)
    email_verification_ttl_h: int = Field(48, ge=1, le=24 * 14)
    # Sign-in limits (policy in platform_api.auth.ratelimit), failures counted over a sliding window:
    login_window_s: int = Field(900, ge=10, description="sliding window of the sign-in limits, seconds")
    login_max_failures_per_account_address: int = Field(
        5, ge=1, description="failed sign-ins to one account from one address: then that address waits"
    )
    login_max_failures_per_account: int = Field(
        100,
        ge=1,
        description="failed sign-ins to one account from all addresses together (distributed guessing): then "
        "only addresses the account signed in from within login_known_address_days may still try",
    )
    login_max_failures_per_address: int = Field(
        30, ge=1, description="failed sign-ins from one address to any accounts (credential stuffing)"
    )
    login_known_address_days: int = Field(
        30, ge=1, le=365, description="how long a successful sign-in exempts its address from the account-wide limit"
    )
    # Sign-up and verification resend, each counted per client address and per email (every request counts):
    signup_window_s: int = Field(3600, ge=10, description="sliding window of the sign-up and resend limits, seconds")
    signup_max_per_address: int = Field(20, ge=1, description="sign-ups (and, apart, resends) per client address")
    signup_max_per_email: int = Field(3, ge=1, description="sign-ups (and, apart, resends) per email address")
    # Client addresses come from X-Forwarded-For only when the peer is one of these (IPs or CIDR networks,
    # comma-separated in FITREC_PLATFORM_TRUSTED_PROXIES); empty: the peer is the client, headers are ignored.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="proxies whose X-Forwarded-For is believed (IPs or CIDR networks)"
    )
    # OIDC sign-in providers by name (google, apple), e.g. as JSON in FITREC_PLATFORM_OIDC_PROVIDERS:
    # {"google": {"issuers": ["https://accounts.google.com", "accounts.google.com"],
    #   "audiences": ["<client id>"], "jwks_uri": "https://www.googleapis.com/oauth2/v3/certs"}}
    oidc_providers: dict[str, OidcProvider] = Field(default_factory=dict)
    # --- email: dev:// (mailbox in the database, listed at /v1/admin/mailbox) or smtp[s]://user:pass@host:port
    email_url: SecretStr = SecretStr("dev://")
    email_from: str = "fitrec <no-reply@fitrec.local>"
    public_base_url: str = "http://localhost:8000"  # where links in emails point
    # --- content: object storage by URL scheme, file:///abs/path (default: data_dir/objects) or s3://bucket/prefix
    storage_url: str | None = None
    s3_endpoint_url: str | None = None  # S3-compatible endpoint (MinIO, moto); None = AWS
    max_upload_bytes: int = Field(200 * 1024 * 1024, ge=1024)
    # --- payments: "sandbox" (embedded: a local gateway confirming by signed webhook; dev only, refused elsewhere)
    # or "live" (Stripe + regional; outside dev its four secrets must be set)
    payment_mode: Literal["sandbox", "live"] = "sandbox"
    stripe_api_key: SecretStr = SecretStr(DEV_PLACEHOLDER)
    stripe_webhook_secret: SecretStr = SecretStr(DEV_PLACEHOLDER)
    regional_gateway_url: str = "https://api.regional-psp.example/v1"
    regional_api_key: SecretStr = SecretStr(DEV_PLACEHOLDER)
    regional_webhook_secret: SecretStr = SecretStr(DEV_PLACEHOLDER)
    sandbox_webhook_secret: SecretStr = SecretStr("whsec_sandbox_" + DEV_PLACEHOLDER)
    webhook_tolerance_s: int = Field(300, ge=10, le=3600)  # signed timestamps older than this are refused
    sandbox_confirm_delay_s: float = Field(0.5, ge=0, le=60)  # the sandbox "bank" answers after this delay
    # --- entitlements
    trial_days: int = Field(14, ge=0, le=90)
    # --- health providers pulled by the worker's health sync (the Fitbit Web API; tests point it at a fake)
    fitbit_api_url: str = "https://api.fitbit.com"
    fitbit_client_id: str = ""
    fitbit_client_secret: SecretStr = SecretStr("")
    health_sync_timeout_s: float = Field(10.0, gt=0, le=120, description="timeout of each call to a provider")
    health_sync_first_days: int = Field(7, ge=1, le=30, description="days pulled on an integration's first sync")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        return [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: list[str]) -> list[str]:
        # Only addresses and networks: "*" or a host name would make every peer (or a spoofable one) a proxy.
        for proxy in value:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError as exc:
                raise ValueError(f"trusted_proxies: {proxy!r} is not an IP address or CIDR network") from exc
        return value

    @model_validator(mode="after")
    def _refuse_dev_defaults(self) -> "PlatformSettings":
        """Outside dev: no placeholder secret (a default in the source is public), no sandbox payments."""
        if self.environment == "dev":
            return self
        if self.payment_mode != "live":
            raise ValueError(
                "payment_mode 'sandbox' confirms payments without taking money; outside dev set "
                "FITREC_PLATFORM_PAYMENT_MODE=live"
            )
        for name in REQUIRED_SECRETS + LIVE_PAYMENT_SECRETS:
            if DEV_PLACEHOLDER in getattr(self, name).get_secret_value():
                raise ValueError(f"{name} must be set outside dev (FITREC_PLATFORM_{name.upper()})")
        return self

    @property
    def object_store_url(self) -> str:
        """Where uploaded media go: the configured URL, or a folder under the data folder."""
        return self.storage_url or (self.data_dir / "objects").resolve().as_uri()

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
