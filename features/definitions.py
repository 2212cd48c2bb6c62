"""Every Feast object of the repo bound at module level, for Feast's own CLI (`feast plan`, `apply`, `ui`).

The objects are built by the modules of their type (features.entities,
.sources, .views, .on_demand, .services) through `features.store.definitions`,
the same call the programmatic path (`apply_definitions`) makes, so the CLI and
the platform always agree on the registry. The batch sources follow the
offline store named by FITREC_FEAST_OFFLINE ("file": parquet files, the
default; "postgres": PostgreSQL tables); the repository file that
`features.store.write_repo` writes into a data folder sets it for its profile.

Importing this module imports Feast and builds the objects; the platform's own
code paths never import it.
"""

import os

from features.sources import OfflineBackend
from features.store import definitions

BACKEND: OfflineBackend = "postgres" if os.environ.get("FITREC_FEAST_OFFLINE") == "postgres" else "file"
_by_name = {obj.name: obj for obj in definitions(BACKEND)}

# Entities
user = _by_name["user"]
item = _by_name["item"]

# Batch sources (the feature tables) and push sources (fresh rows between builds)
user_profile_source = _by_name["user_profile_source"]
user_workout_stats_source = _by_name["user_workout_stats_source"]
user_health_source = _by_name["user_health_source"]
user_engagement_source = _by_name["user_engagement_source"]
item_stats_source = _by_name["item_stats_source"]
item_catalogue_source = _by_name["item_catalogue_source"]
user_recent_items_source = _by_name["user_recent_items_source"]
user_profile_push = _by_name["user_profile_push"]
user_workout_stats_push = _by_name["user_workout_stats_push"]
user_health_push = _by_name["user_health_push"]
user_engagement_push = _by_name["user_engagement_push"]
user_recent_items_push = _by_name["user_recent_items_push"]
item_catalogue_push = _by_name["item_catalogue_push"]

# Feature views
user_profile = _by_name["user_profile"]
user_workout_stats = _by_name["user_workout_stats"]
user_health = _by_name["user_health"]
user_engagement = _by_name["user_engagement"]
item_stats = _by_name["item_stats"]
item_catalogue = _by_name["item_catalogue"]
user_recent_items = _by_name["user_recent_items"]

# On-demand view and feature service
ranking_fit = _by_name["ranking_fit"]
ranking_v1 = _by_name["ranking_v1"]

_unbound = sorted(set(_by_name) - set(globals()))
if _unbound:  # a definition added to features.store.definitions must be bound above
    raise RuntimeError(f"Feast objects not bound at module level in features.definitions: {_unbound}")

__all__ = sorted(_by_name)
