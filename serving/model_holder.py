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
    ranker: Any  # models.recommender's python model: score(frame), explain(frame), feature_names

    @property
    def label(self) -> str:
        return f"v{self.version}"


class ModelHolder:
    def __init__(self, *, tracking_uri: str, name: str, alias: str) -> None:
        self._tracking_uri = tracking_uri
        self._name = name
        self._alias = alias
        self._current: LoadedModel | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def refresh(self) -> bool:
        """Load the alias's version if it changed; returns whether a new model now serves."""
        with self._lock:
            client = MlflowClient(tracking_uri=self._tracking_uri, registry_uri=self._tracking_uri)
            try:
                version = client.get_model_version_by_alias(self._name, self._alias).version
            except MlflowException as exc:
                log.warning("no %s@%s in the registry yet: %s", self._name, self._alias, exc)
                return False
            if self._current is not None and self._current.version == str(version):
                return False
            # Load from the version's artifact location: no process-wide tracking URI is set
            # (MLflow would also export it to the environment for everything else in the process).
            loaded = mlflow.pyfunc.load_model(client.get_model_version_download_uri(self._name, version))
            # A single attribute assignment: readers see the old or the new model, never a mix.
            self._current = LoadedModel(version=str(version), ranker=loaded.unwrap_python_model())
            log.info("serving %s version %s", self._name, version)
            return True
