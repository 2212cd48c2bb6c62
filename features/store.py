"""The Feast store, configured in code: embedded (files + SQLite) or production (PostgreSQL, Redis, SQL registry).

Each part is chosen by one setting: `offline_url` (a PostgreSQL URL: the
PostgreSQL offline store over the feature tables in that database; otherwise
parquet files), `redis_url` (the Redis online store; otherwise SQLite) and
`registry_url` (a SQL registry; otherwise a file).

The same configuration is written into the data folder as a Feast repository
(`write_repo`, done by every `apply_definitions`): `feature_store.yaml` for
the profile, a repository file binding the definitions (features.definitions)
and a `.feastignore`, so Feast's own CLI works on it:

    feast -c $FITREC_DATA_DIR plan      # also: apply, feature-views list, ui

Secrets are not written: the production file refers to FITREC_FEAST_PG_PASSWORD
and FITREC_FEAST_REDIS_PASSWORD, which Feast expands from the environment.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlparse

from features.postgres import connection_params, is_postgres, sqlalchemy_url
from features.sources import FEATURE_SCHEMA, OfflineBackend

if TYPE_CHECKING:
    from feast import FeatureStore

PROJECT = "fitrec"
REPO_SUBDIR = "feature_repo"
# The Feast repository files written into the data folder (see write_repo).
REPO_YAML = "feature_store.yaml"
REPO_MODULE = "fitrec_feature_repo.py"
PG_PASSWORD_VAR = "FITREC_FEAST_PG_PASSWORD"
REDIS_PASSWORD_VAR = "FITREC_FEAST_REDIS_PASSWORD"


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
    The data folder's Feast repository files are (re)written for this profile.
    """
    store.apply(definitions(offline_backend(store)))
    if store.config.repo_path is not None:
        write_repo(store.config, Path(str(store.config.repo_path)))


def repo_yaml(config: Any) -> dict[str, Any]:
    """A RepoConfig as the `feature_store.yaml` mapping Feast's CLI loads, passwords as ${VAR} references."""
    registry = config.registry
    reg: dict[str, Any] = {
        "registry_type": registry.registry_type,
        "path": _without_password(str(registry.path)),
        "cache_ttl_seconds": registry.cache_ttl_seconds,
    }
    online = {"type": config.online_store.type, **config.online_store.model_dump(mode="json", exclude_unset=True)}
    if "connection_string" in online:
        parts = online["connection_string"].split(",")
        online["connection_string"] = ",".join(
            f"password=${{{REDIS_PASSWORD_VAR}}}" if p.startswith("password=") else p for p in parts
        )
    offline = {"type": config.offline_store.type, **config.offline_store.model_dump(mode="json", exclude_unset=True)}
    if offline.get("password"):
        offline["password"] = f"${{{PG_PASSWORD_VAR}}}"
    return {
        "project": config.project,
        "provider": config.provider,
        "registry": reg,
        "online_store": online,
        "offline_store": offline,
        "entity_key_serialization_version": config.entity_key_serialization_version,
    }


def _without_password(url: str) -> str:
    parsed = urlparse(url)
    if not parsed.password:
        return url
    user = quote(unquote(parsed.username or ""), safe="")
    host = f"{parsed.hostname}:{parsed.port}" if parsed.port else str(parsed.hostname)
    return parsed._replace(netloc=f"{user}:${{{PG_PASSWORD_VAR}}}@{host}").geturl()


def write_repo(config: Any, repo_dir: Path) -> None:
    """Write the Feast repository of this configuration into `repo_dir` (the data folder).

    `feature_store.yaml` (the profile: registry, online and offline store),
    `fitrec_feature_repo.py` (binds features.definitions for the profile's
    offline backend) and `.feastignore` (sub-folders hold no definitions:
    model artifacts must never be imported by Feast).
    """
    import yaml

    from features.pg_offline_store import STORE_TYPE

    repo_dir = Path(repo_dir)
    repo_dir.mkdir(parents=True, exist_ok=True)
    mapping = repo_yaml(config)
    backend = "postgres" if mapping["offline_store"]["type"] == STORE_TYPE else "file"
    header = (
        "# fitrec's Feast repository for this data folder, written by features.store.write_repo on every\n"
        "# feature build (edit the settings, not this file). Use: feast -c <this folder> plan | apply | ui\n"
    )
    if backend == "postgres":
        header += f"# Passwords come from the environment: export {PG_PASSWORD_VAR} / {REDIS_PASSWORD_VAR}.\n"
    _write(repo_dir / REPO_YAML, header + yaml.safe_dump(mapping, sort_keys=False))
    _write(
        repo_dir / REPO_MODULE,
        f'''"""fitrec's Feast definitions for Feast's CLI ({backend} offline store), by features.store.write_repo."""

import os

os.environ["FITREC_FEAST_OFFLINE"] = "{backend}"

from features.definitions import *  # noqa: E402, F403  (every object, bound at module level)
''',
    )
    _write(repo_dir / ".feastignore", "# Only the repository file at the top holds definitions.\n*/\n")


def _write(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
