"""Feature services: the versioned feature sets models are trained and served with.

RANKING_SERVICE and RANKING_FEATURES are the one place training and serving
learn which features a ranker gets, and in which order. Importing this module
does not import Feast; `feature_services()` builds the Feast objects.
"""

from typing import TYPE_CHECKING

from features.schema import FIT_FEATURES, ITEM_STATS, USER_HEALTH

if TYPE_CHECKING:
    from feast import FeatureService, FeatureView
    from feast.on_demand_feature_view import OnDemandFeatureView

RANKING_SERVICE = "ranking_v1"

_RANKING_USER_WORKOUT = (
    "workouts_7d",
    "workouts_28d",
    "minutes_7d",
    "minutes_28d",
    "avg_rpe_28d",
    "streak_days",
    "days_since_last_workout",
)
_RANKING_USER_ENGAGEMENT = ("impressions_28d", "clicks_28d", "ctr_28d")
_RANKING_ITEM_CATALOGUE = ("item_duration_min", "item_premium", "item_is_plan", "item_level_ord", "item_intensity")

# The model's input columns, in order.
RANKING_FEATURES: tuple[str, ...] = (
    *_RANKING_USER_WORKOUT,
    *USER_HEALTH,
    *_RANKING_USER_ENGAGEMENT,
    *ITEM_STATS,
    *_RANKING_ITEM_CATALOGUE,
    *FIT_FEATURES,
)
# Columns of RANKING_FEATURES that come from each feature view (the rest come from the on-demand view).
RANKING_VIEW_FEATURES: dict[str, tuple[str, ...]] = {
    "user_workout_stats": _RANKING_USER_WORKOUT,
    "user_health": USER_HEALTH,
    "user_engagement": _RANKING_USER_ENGAGEMENT,
    "item_stats": ITEM_STATS,
    "item_catalogue": _RANKING_ITEM_CATALOGUE,
}


def ranking_v1(views: dict[str, "FeatureView"], on_demand: dict[str, "OnDemandFeatureView"]) -> "FeatureService":
    from feast import FeatureService

    return FeatureService(
        name=RANKING_SERVICE,
        features=[views[view][list(cols)] for view, cols in RANKING_VIEW_FEATURES.items()] + [on_demand["ranking_fit"]],
        description="Features of the LightGBM ranker, v1",
    )


def feature_services(
    views: dict[str, "FeatureView"], on_demand: dict[str, "OnDemandFeatureView"]
) -> list["FeatureService"]:
    return [ranking_v1(views, on_demand)]
