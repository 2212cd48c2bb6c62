"""The Feast store, configured in code: embedded (files + SQLite) or production (PostgreSQL, Redis, SQL registry).

Each part is chosen by one setting: `offline_url` (a PostgreSQL URL: the
PostgreSQL offline store over the feature tables in that database; otherwise
parquet files), `redis_url` (the Redis online store; otherwise SQLite) and
`registry_url` (a SQL registry; otherwise a file).
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlparse

from features.postgres import connection_params, is_postgres, sqlalchemy_url
from features.sources import FEATURE_SCHEMA, OfflineBackend

if TYPE_CHECKING:
    from feast import FeatureStore

PROJECT = "fitrec"
REPO_SUBDIR = "feature_repo"


def redis_connection_string(url: str, *, timeout_s: float | None = None) -> str:
    """A redis:// URL → Feast's "host:port,db=N,password=…,ssl=true" connection string.

    `timeout_s` bounds connecting and each socket read, without retries (Feast passes extra
    keys to redis-py); without it a frozen Redis hangs a read forever.
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss"):
        raise ValueError(f"not a redis URL: {url!r}")
    parts = [f"{parsed.hostname or 'localhost'}:{parsed.port or 6379}"]
    db = (parsed.path or "/0").lstrip("/") or parse_qs(parsed.query).get("db", ["0"])[0]
    parts.append(f"db={int(db)}")
    if parsed.username and parsed.username != "default":
        parts.append(f"username={unquote(parsed.username)}")
    if parsed.password:
        parts.append(f"password={unquote(parsed.password)}")
    if parsed.scheme == "rediss":
        parts.append("ssl=true")
    if timeout_s is not None:
        # retry=null: redis-py would otherwise retry a timed-out read three times with backoff (~10 s).
        parts += [f"socket_timeout={timeout_s}", f"socket_connect_timeout={timeout_s}", "retry=null"]
    return ",".join(parts)


def repo_config(
    *,
    data_dir: Path,
    redis_url: str | None = None,
    registry_url: str | None = None,
    project: str = PROJECT,
    offline_url: str | None = None,
    redis_timeout_s: float | None = None,
) -> Any:
    """The RepoConfig of a profile; relative source paths resolve against `data_dir`."""
    from feast import RepoConfig
    from feast.infra.offline_stores.dask import DaskOfflineStoreConfig
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
    from feast.repo_config import RegistryConfig

    data_dir = Path(data_dir).resolve()
    repo_dir = data_dir / REPO_SUBDIR
    registry: RegistryConfig
    if registry_url:
        from feast.infra.registry.sql import SqlRegistryConfig

        registry = SqlRegistryConfig(path=sqlalchemy_url(registry_url), cache_ttl_seconds=60)
    else:
        registry = RegistryConfig(registry_type="file", path=str(repo_dir / "registry.db"), cache_ttl_seconds=60)
    online: Any
    if redis_url:
        online = RedisOnlineStoreConfig(connection_string=redis_connection_string(redis_url, timeout_s=redis_timeout_s))
    else:
        online = SqliteOnlineStoreConfig(path=str(repo_dir / "online_store.db"))
    offline: Any = DaskOfflineStoreConfig()
    if is_postgres(offline_url):
        from features.pg_offline_store import FitrecPostgreSQLOfflineStoreConfig

        assert offline_url is not None
        # embed_query: entity rows are given as a query over a table retrieval uploads (features.retrieval).
        offline = FitrecPostgreSQLOfflineStoreConfig(
            db_schema=FEATURE_SCHEMA, entity_select_mode="embed_query", **connection_params(offline_url)
        )
    return RepoConfig(
        project=project,
        provider="local",
        registry=registry,
        online_store=online,
        offline_store=offline,
        entity_key_serialization_version=3,
        repo_path=data_dir,
    )


def open_store(
    *,
    data_dir: Path,
    redis_url: str | None = None,
    registry_url: str | None = None,
    project: str = PROJECT,
    offline_url: str | None = None,
    redis_timeout_s: float | None = None,
) -> "FeatureStore":
    """A FeatureStore over the data folder; creates the repo folder, touches no other state.

    `offline_url` is the platform's database URL: PostgreSQL selects the
    PostgreSQL offline store, anything else (None, SQLite) the parquet files.
    """
    from feast import FeatureStore

    config = repo_config(
        data_dir=data_dir,
        redis_url=redis_url,
        registry_url=registry_url,
        project=project,
        offline_url=offline_url,
        redis_timeout_s=redis_timeout_s,
    )
    (Path(data_dir).resolve() / REPO_SUBDIR).mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(Path(data_dir).resolve()), config=config)


def offline_backend(store: "FeatureStore") -> OfflineBackend:
    """Which offline store the store's configuration uses."""
    from feast.infra.offline_stores.contrib.postgres_offline_store.postgres import PostgreSQLOfflineStoreConfig

    return "postgres" if isinstance(store.config.offline_store, PostgreSQLOfflineStoreConfig) else "file"


def definitions(backend: OfflineBackend = "file") -> list[Any]:
    """Every Feast object of the repo, with batch sources on the given offline backend."""
    from features.entities import ENTITIES
    from features.on_demand import on_demand_views
    from features.services import feature_services
    from features.views import feature_views

    views = feature_views(backend)
    on_demand = {view.name: view for view in on_demand_views(views)}
    sources = [view.batch_source for view in views.values() if view.batch_source is not None]
    pushes = [view.stream_source for view in views.values() if view.stream_source is not None]
    return [
        *ENTITIES,
        *sources,
        *pushes,
        *views.values(),
        *on_demand.values(),
        *feature_services(views, on_demand),
    ]


def apply_definitions(store: "FeatureStore") -> None:
    """Register (or update) every definition and create the online tables; idempotent.

    The batch sources follow the store's offline configuration; re-applying
    under another backend replaces them (the registry never mixes the two).
    """
    store.apply(definitions(offline_backend(store)))
