"""Assembling a RankingPath from explicit arguments: the serving app builds one at start-up, batch precompute
one per Ray actor, so both rank with the same parts (this module knows no settings class)."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from feast import FeatureStore
from sqlalchemy.orm import Session, sessionmaker

from features.retrieval import OnlineFeatureReader
from features.store import open_store
from platform_api.catalogue.service import Item
from platform_api.entitlements.service import premium_catalogue_access
from serving.ranking.catalogue import Catalogue
from serving.ranking.path import RankingPath
from serving.ranking.rules import NO_ACCESS, Access, RuleSettings
from serving.ranking.scorer import make_scorer

log = logging.getLogger(__name__)
POPULARITY_FEATURE = "item_popularity_28d"


@dataclass
class Features:
    reader: OnlineFeatureReader | None  # None: the online features cannot be read (`problem` says why)
    popularity: dict[str, float]
    problem: str | None
    built: bool = True


def open_features(
    items: list[Item],
    *,
    data_dir: Path,
    redis_url: str | None,
    project: str,
    offline_url: str | None,
    redis_timeout_s: float,
) -> tuple[FeatureStore | None, Features]:
    """The feature store and popularity, or what is missing and why (never raises: ranking degrades)."""
    try:
        store = open_store(
            data_dir=data_dir,
            redis_url=redis_url,
            project=project,
            offline_url=offline_url,
            redis_timeout_s=redis_timeout_s,
        )
        built = bool(store.list_feature_views())
    except Exception as exc:  # noqa: BLE001 - a missing or broken store degrades answers to popularity
        log.exception("the feature store cannot be opened: recommendations fall back to popularity")
        return None, Features(None, {}, f"feature store cannot be opened: {exc}", built=False)
    if not built:
        problem = "the feature store is empty: run `fitrec features build`"
        log.warning("%s; recommendations fall back to popularity", problem)
        return store, Features(None, {}, problem, built=False)
    reader = OnlineFeatureReader(store)
    popularity: dict[str, float] = {}
    unreachable: str | None = None
    if items:
        # Candidate order: recent popularity as materialized in the online store (also warms the item rows).
        try:
            popularity = reader("", [i.item_id for i in items])[POPULARITY_FEATURE].to_dict()
        except Exception as exc:  # noqa: BLE001 - an unreachable online store must not stop start-up
            unreachable = f"online store unreachable at start-up (candidates in catalogue order): {exc}"
            log.exception("%s", unreachable)
    return store, Features(reader, popularity, unreachable)


def access_reader(sessions: sessionmaker[Session]) -> Callable[[str], Access]:
    """A user's premium access from the platform database; an unreadable one opens nothing premium."""

    def read(user_id: str) -> Access:
        try:
            with sessions() as session:
                premium, unlocked = premium_catalogue_access(session, user_id=user_id)
        except Exception:  # noqa: BLE001 - the slate goes on, without premium items
            log.warning("entitlements of %s cannot be read: no premium items", user_id, exc_info=True)
            return NO_ACCESS
        return Access(premium=premium, unlocked=frozenset(unlocked))

    return read


def rule_settings(*, recent_window_days: float, max_level_above: int, max_per_category: int) -> RuleSettings:
    return RuleSettings(
        recent_window_s=recent_window_days * 86400.0,
        max_level_above=max_level_above,
        max_per_category=max_per_category,
    )


def ranking_path(
    items: list[Item],
    features: Features,
    *,
    sessions: sessionmaker[Session],
    scorer_url: str,
    breaker_failures: int,
    rules: RuleSettings,
    n_candidates: int,
) -> RankingPath:
    """The ranking path over these items and features, premium access read from the platform's sessions."""
    return RankingPath(
        catalogue=Catalogue(items, features.popularity),
        online=features.reader,
        features_problem=features.problem,
        access=access_reader(sessions),
        scorer=make_scorer(scorer_url, breaker_failures=breaker_failures),
        rules=rules,
        n_candidates=n_candidates,
    )
