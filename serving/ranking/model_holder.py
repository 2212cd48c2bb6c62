"""The serving model: loaded once per registry version, swapped atomically."""

import hashlib
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

    @property
    def alias(self) -> str:
        return self._alias

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
        """Nothing serves yet: the fallback alias's version, else the newest other version that loads
        (neither without a fallback alias)."""
        if not self._fallback_alias:
            return False
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


CHAMPION, CHALLENGER = "champion", "challenger"


class ModelArms:
    """The A/B split: a stable share of users (by a hash of the experiment name and the user id) gets the
    `challenger` alias's model, the rest `champion`'s. Without a loadable challenger everyone gets champion."""

    def __init__(
        self,
        *,
        tracking_uri: str,
        name: str,
        champion_alias: str = CHAMPION,
        challenger_alias: str = CHALLENGER,
        challenger_share: float = 0.0,
        experiment: str = "ranker",
    ) -> None:
        if not 0.0 <= challenger_share <= 1.0:
            raise ValueError("challenger_share must be within [0, 1]")
        self.experiment = experiment
        self.share = challenger_share
        self.champion = ModelHolder(tracking_uri=tracking_uri, name=name, alias=champion_alias)
        # The challenger never falls back to other versions: without its own model, its users get champion's.
        self.challenger = (
            ModelHolder(tracking_uri=tracking_uri, name=name, alias=challenger_alias, fallback_alias="")
            if challenger_share > 0
            else None
        )
        self._salt = f"{experiment}:".encode()
        self._cut = int(challenger_share * (1 << 64))

    def arm_of(self, user_id: str) -> str:
        """The arm the split assigns to the user (the same on every replica and every request)."""
        if self.challenger is None:
            return CHAMPION
        digest = hashlib.blake2b(self._salt + user_id.encode(), digest_size=8).digest()
        return CHALLENGER if int.from_bytes(digest, "big") < self._cut else CHAMPION

    def for_user(self, user_id: str) -> tuple[str, LoadedModel | None]:
        """(arm, the model that serves it); the challenger's users get champion's model while it has none."""
        arm = self.arm_of(user_id)
        if arm == CHALLENGER and self.challenger is not None:
            model = self.challenger.current
            if model is not None:
                return arm, model
        return CHAMPION, self.champion.current

    @property
    def current(self) -> LoadedModel | None:
        """The champion's model (what serves users outside the experiment)."""
        return self.champion.current

    @property
    def problem(self) -> str | None:
        return self.champion.problem

    def arms(self) -> dict[str, tuple[ModelHolder, float]]:
        """Each arm's holder and its share of users."""
        out = {CHAMPION: (self.champion, 1.0 - self.share if self.challenger else 1.0)}
        if self.challenger is not None:
            out[CHALLENGER] = (self.challenger, self.share)
        return out

    def refresh(self) -> bool:
        """Follow both aliases; whether a new model now serves either arm. Never raises."""
        changed = self.champion.refresh()
        if self.challenger is not None:
            changed = self.challenger.refresh() or changed
        return changed
