"""The event contract: one envelope, a typed properties model per event type."""

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

# Clock skew tolerated between a device and the platform.
MAX_FUTURE_SKEW = timedelta(minutes=10)
# Older than consumer wearables is a wrong clock or a bad import; imported history such as the
# 2016 Fitbit exports still passes. The API refuses what the batch validation would quarantine.
MAX_AGE = timedelta(days=20 * 365)


def plausible_day(value: date) -> date:
    """A calendar day within MAX_AGE, at most tomorrow (a local "today" may be tomorrow in UTC)."""
    now = datetime.now(UTC)
    midnight = datetime.combine(value, datetime.min.time(), tzinfo=UTC)
    if midnight < now - MAX_AGE:
        raise ValueError(f"{value} is more than {MAX_AGE.days // 365} years ago")
    if value > now.date() + timedelta(days=1):
        raise ValueError(f"{value} is in the future")
    return value


# Every string of the contract is bounded: ids as the event log's columns, names, free text.
Id = Annotated[str, Field(min_length=1, max_length=64)]
ItemId = Annotated[str, Field(min_length=1, max_length=128)]
Label = Annotated[str, Field(min_length=1, max_length=64)]
Day = Annotated[date, AfterValidator(plausible_day)]
Rpe = Annotated[float, Field(ge=1, le=10)]
Goal = Literal["lose_weight", "build_muscle", "build_strength", "endurance", "mobility", "general_fitness"]
Level = Literal["beginner", "intermediate", "expert"]
Source = Literal["recommendation", "browse", "search", "plan", "free"]


class Props(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UserCreated(Props):
    # Unknown for people who arrive through an import rather than the app's onboarding.
    goal: Goal | None = None
    fitness_level: Level | None = None
    equipment: list[Annotated[str, Field(min_length=1, max_length=50)]] = Field(default_factory=list, max_length=20)
    session_minutes: int = Field(30, ge=5, le=240)
    region: str = Field("US", min_length=2, max_length=2)
    source: Literal["app", "oidc", "import"] = "app"


class ProfileUpdated(Props):
    """The whole training profile after a change (not only what changed): the newest event alone states it."""

    goal: Goal | None = None
    fitness_level: Level | None = None
    equipment: list[Annotated[str, Field(min_length=1, max_length=50)]] = Field(default_factory=list, max_length=20)
    session_minutes: int = Field(30, ge=5, le=240)
    region: str = Field("US", min_length=2, max_length=2)


class EmailVerified(Props):
    pass


class PlanEnrolled(Props):
    source: Source = "browse"
    request_id: Id | None = None


class WorkoutStarted(Props):
    session_id: Id
    source: Source = "free"
    request_id: Id | None = None


class ExerciseLogged(Props):
    session_id: Id
    exercise_id: ItemId
    sets: int = Field(ge=1, le=50)
    reps: int = Field(0, ge=0, le=1000)
    duration_s: int = Field(0, ge=0, le=4 * 3600)
    weight_kg: float = Field(0, ge=0, le=500)
    rpe: Rpe | None = None


class WorkoutCompleted(Props):
    session_id: Id
    duration_min: float = Field(gt=0, le=600)
    total_sets: int = Field(ge=0, le=500)
    total_reps: int = Field(ge=0, le=10000)
    calories: float = Field(ge=0, le=5000)
    rpe: Rpe | None = None
    category: Label | None = None


class HealthMetricSynced(Props):
    day: Day
    steps: int | None = Field(None, ge=0, le=150_000)
    active_minutes: int | None = Field(None, ge=0, le=1440)
    resting_hr: float | None = Field(None, ge=25, le=220)
    sleep_minutes: int | None = Field(None, ge=0, le=1440)
    weight_kg: float | None = Field(None, ge=20, le=400)
    source: str = Field("app", min_length=1, max_length=32)


class ContentViewed(Props):
    seconds: int = Field(0, ge=0, le=24 * 3600)
    source: Source = "browse"
    request_id: Id | None = None


class ContentReady(Props):
    kind: Literal["exercise_guide", "video", "article"]


class RecommendationImpression(Props):
    request_id: Id
    position: int = Field(ge=0, le=1000)
    model_version: Label
    arm: Label = "control"
    surface: Label = "home"
    cached: bool = False
    score: float | None = None


class RecommendationAction(Props):
    request_id: Id
    # Null when the slate was not known yet where the action was recorded; the request_id still joins it.
    position: int | None = Field(None, ge=0, le=1000)
    model_version: Label | None = None
    arm: Label | None = None
    surface: Label | None = None


class RecommendationConverted(RecommendationAction):
    """The user went on from a recommended item: enrolled in the plan, started or completed its workout."""

    action: Literal["enroll", "start", "complete"]


class PaymentEvent(Props):
    payment_id: Id
    amount_cents: int = Field(ge=0, le=100_000_000)
    currency: str = Field(min_length=3, max_length=3)
    gateway: str = Field(min_length=1, max_length=32)
    reason: str | None = Field(None, max_length=200)


class TrialStarted(Props):
    ends_at: datetime


class ItemUnlocked(Props):
    credits: int = Field(ge=0, le=1_000_000)


class SubscriptionActivated(Props):
    subscription_id: Id
    plan_code: Label
    renews_at: datetime


PROPERTIES: dict[str, type[Props]] = {
    "user.created": UserCreated,
    "user.profile_updated": ProfileUpdated,
    "user.email_verified": EmailVerified,
    "plan.enrolled": PlanEnrolled,
    "workout.started": WorkoutStarted,
    "exercise.logged": ExerciseLogged,
    "workout.completed": WorkoutCompleted,
    "health_metric.synced": HealthMetricSynced,
    "content.viewed": ContentViewed,
    "content.ready": ContentReady,
    "recommendation.impression": RecommendationImpression,
    "recommendation.clicked": RecommendationAction,
    "recommendation.dismissed": RecommendationAction,
    "recommendation.converted": RecommendationConverted,
    "payment.completed": PaymentEvent,
    "payment.failed": PaymentEvent,
    "subscription.activated": SubscriptionActivated,
    "trial.started": TrialStarted,
    "item.unlocked": ItemUnlocked,
}
EVENT_TYPES = tuple(PROPERTIES)
# Catalogue events describe items, not a user's action.
USERLESS_TYPES = frozenset({"content.ready"})
ITEM_REQUIRED_TYPES = frozenset(
    {
        "plan.enrolled",
        "content.viewed",
        "content.ready",
        "recommendation.impression",
        "recommendation.clicked",
        "recommendation.dismissed",
        "recommendation.converted",
        "item.unlocked",
    }
)


class EventIn(BaseModel):
    """An event as a producer sends it; `received_at` is set by the platform."""

    model_config = ConfigDict(extra="forbid")

    event_id: UUID
    event_type: str = Field(max_length=64)
    user_id: str | None = Field(None, min_length=1, max_length=64)
    item_id: str | None = Field(None, min_length=1, max_length=128)
    occurred_at: datetime
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("occurred_at")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("occurred_at must carry a timezone (UTC)")
        now = datetime.now(UTC)
        if value > now + MAX_FUTURE_SKEW:
            raise ValueError("occurred_at is in the future")
        if value < now - MAX_AGE:
            raise ValueError(f"occurred_at is more than {MAX_AGE.days // 365} years ago")
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _typed(self) -> "EventIn":
        model = PROPERTIES.get(self.event_type)
        if model is None:
            raise ValueError(f"unknown event_type {self.event_type!r}; known: {', '.join(EVENT_TYPES)}")
        if self.user_id is None and self.event_type not in USERLESS_TYPES:
            raise ValueError(f"user_id is required for {self.event_type}")
        if self.item_id is None and self.event_type in ITEM_REQUIRED_TYPES:
            raise ValueError(f"item_id is required for {self.event_type}")
        self.properties = model.model_validate(self.properties).model_dump(mode="json")
        return self


class Event(EventIn):
    received_at: datetime
