"""The serving model: loaded once per registry version, swapped atomically."""

import logging
import threading
from dataclasses import dataclass
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    version: str
    # The packaged recommender (models.recommender.PackagedRecommender): candidates(users, users_frame),
    # score(frame), explain(frame), slate(item_ids, scores, k); serving uses only these.
    ranker: Any

    @property
    def label(self) -> str:
        return f"v{self.version}"


class ModelHolder:
    """Follows a registry alias; when its version cannot be loaded, keeps or finds the last good one.

    The order when the alias's version fails: the model already serving (the last good one),
    else the `previous` alias, else the newest other version that loads. `problem` says why
    what serves is not the alias's version (None when it is).
    """

    def __init__(self, *, tracking_uri: str, name: str, alias: str, fallback_alias: str = "previous") -> None:
        self._tracking_uri = tracking_uri
        self._name = name
        self._alias = alias
        self._fallback_alias = fallback_alias
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()
        self.problem: str | None = "not loaded yet"

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def refresh(self) -> bool:
        """Load the alias's version if it changed; returns whether a new model now serves. Never raises."""
        with self._lock:
            try:
                return self._refresh(MlflowClient(tracking_uri=self._tracking_uri, registry_uri=self._tracking_uri))
            except Exception as exc:  # noqa: BLE001 - a registry outage keeps the model that serves
                self.problem = f"model registry unreachable: {exc}"
                log.warning("%s", self.problem)
                return False

    def _refresh(self, client: MlflowClient) -> bool:
        try:
            version = str(client.get_model_version_by_alias(self._name, self._alias).version)
        except MlflowException as exc:
            self.problem = f"no {self._name}@{self._alias} in the registry"
            log.warning("%s: %s", self.problem, exc)
            return self._keep_or_fall_back(client, skip=None)
        if self._current is not None and self._current.version == version:
            return False
        try:
            self._load(client, version)
        except Exception as exc:  # noqa: BLE001 - a corrupt or deleted artifact must not stop serving
            self.problem = f"{self._name}@{self._alias} v{version} failed to load: {exc}"
            log.error("%s", self.problem)
            return self._keep_or_fall_back(client, skip=version)
        self.problem = None
        return True

    def _keep_or_fall_back(self, client: MlflowClient, *, skip: str | None) -> bool:
        if self._current is not None:
            self.problem = f"{self.problem}; the last good version v{self._current.version} serves"
            return False
        return self._load_fallback(client, skip=skip)

    def _load_fallback(self, client: MlflowClient, *, skip: str | None) -> bool:
        """Nothing serves yet: the fallback alias's version, else the newest other version that loads."""
        tried = {skip}
        try:
            candidates = [str(client.get_model_version_by_alias(self._name, self._fallback_alias).version)]
        except MlflowException:
            candidates = []
        others = client.search_model_versions(f"name='{self._name}'")
        candidates += sorted((str(v.version) for v in others), key=int, reverse=True)
        for version in candidates:
            if version in tried:
                continue
            tried.add(version)
            try:
                self._load(client, version)
            except Exception as exc:  # noqa: BLE001 - try the next one
                log.error("%s v%s failed to load too: %s", self._name, version, exc)
                continue
            self.problem = f"{self.problem}; serving v{version} instead"
            log.warning("%s", self.problem)
            return True
        return False

    def _load(self, client: MlflowClient, version: str) -> None:
        # Load from the version's artifact location: no process-wide tracking URI is set
        # (MLflow would also export it to the environment for everything else in the process).
        loaded = mlflow.pyfunc.load_model(client.get_model_version_download_uri(self._name, version))
        # A single attribute assignment: readers see the old or the new model, never a mix.
        self._current = LoadedModel(version=version, ranker=loaded.unwrap_python_model())
        log.info("serving %s version %s", self._name, version)
