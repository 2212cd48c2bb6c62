"""The Feast store, configured in code: embedded (files + SQLite) or production (Redis, SQL registry)."""

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlparse

if TYPE_CHECKING:
    from feast import FeatureStore

PROJECT = "fitrec"
REPO_SUBDIR = "feature_repo"


def redis_connection_string(url: str) -> str:
    """A redis:// URL → Feast's "host:port,db=N,password=…,ssl=true" connection string."""
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
    return ",".join(parts)


def repo_config(
    *, data_dir: Path, redis_url: str | None = None, registry_url: str | None = None, project: str = PROJECT
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

        registry = SqlRegistryConfig(path=_sqlalchemy_url(registry_url), cache_ttl_seconds=60)
    else:
        registry = RegistryConfig(registry_type="file", path=str(repo_dir / "registry.db"), cache_ttl_seconds=60)
    online: Any
    if redis_url:
        online = RedisOnlineStoreConfig(connection_string=redis_connection_string(redis_url))
    else:
        online = SqliteOnlineStoreConfig(path=str(repo_dir / "online_store.db"))
    return RepoConfig(
        project=project,
        provider="local",
        registry=registry,
        online_store=online,
        offline_store=DaskOfflineStoreConfig(),
        entity_key_serialization_version=3,
        repo_path=data_dir,
    )


def _sqlalchemy_url(url: str) -> str:
    # Plain postgresql:// URLs (as libpq tools write them) use the psycopg 3 driver.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def open_store(
    *, data_dir: Path, redis_url: str | None = None, registry_url: str | None = None, project: str = PROJECT
) -> "FeatureStore":
    """A FeatureStore over the data folder; creates the repo folder, touches no other state."""
    from feast import FeatureStore

    config = repo_config(data_dir=data_dir, redis_url=redis_url, registry_url=registry_url, project=project)
    (Path(data_dir).resolve() / REPO_SUBDIR).mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(Path(data_dir).resolve()), config=config)


def definitions() -> list[Any]:
    """Every Feast object of the repo."""
    from features.entities import ENTITIES
    from features.on_demand import ON_DEMAND_VIEWS
    from features.services import feature_services
    from features.sources import FILE_SOURCES, PUSH_SOURCES
    from features.views import FEATURE_VIEWS

    return [
        *ENTITIES,
        *FILE_SOURCES.values(),
        *PUSH_SOURCES.values(),
        *FEATURE_VIEWS.values(),
        *ON_DEMAND_VIEWS,
        *feature_services(),
    ]


def apply_definitions(store: "FeatureStore") -> None:
    """Register (or update) every definition and create the online tables; idempotent."""
    store.apply(definitions())
