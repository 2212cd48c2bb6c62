"""Users with latent traits: goal, level, equipment, session length, activity, tastes, health baselines."""

from dataclasses import dataclass, field

import numpy as np

from training.simulation.catalogue import FREE_EQUIPMENT, GOALS, LEVELS, ItemTable
from training.simulation.columns import DAY_MS

GOAL_SHARE = (0.25, 0.18, 0.1, 0.15, 0.1, 0.22)
LEVEL_SHARE = (0.5, 0.35, 0.15)
# Typical minutes per session for each goal (the catalogue's plan shapes).
GOAL_MINUTES = (30, 50, 60, 35, 20, 40)
# Equipment set-ups people describe; "home" users own a random part of the home kit.
KITS: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("bodyweight", 0.3, ()),
    ("dumbbells", 0.2, ("dumbbell",)),
    ("home", 0.2, ("dumbbell", "bands", "kettlebells", "exercise ball", "foam roll", "medicine ball")),
    ("gym", 0.3, ()),  # everything
)
REGIONS = ("US", "GB", "DE", "FR", "ES", "CA", "AU", "BR", "IN", "JP")
REGION_SHARE = (0.35, 0.1, 0.1, 0.07, 0.05, 0.06, 0.05, 0.08, 0.09, 0.05)
HOUR = 3_600_000  # ms


@dataclass(frozen=True)
class Window:
    """The simulated time span [start_ms, end_ms), walked in UTC calendar days.

    Days are calendar days so that a health metric's `day` is the date of the
    workouts it reflects; partial first and last days are cut at the window's edges.
    """

    start_ms: int
    end_ms: int

    @property
    def origin(self) -> int:
        return self.start_ms - self.start_ms % DAY_MS  # midnight on or before the start

    @property
    def days(self) -> int:
        return -(-(self.end_ms - self.origin) // DAY_MS)

    def day_start(self, day: int | np.ndarray) -> int | np.ndarray:
        return self.origin + day * DAY_MS


@dataclass(frozen=True)
class SimUser:
    """A simulated user's latent traits (what a recommender should discover)."""

    user_id: str
    goal: str
    fitness_level: str
    equipment: tuple[str, ...]
    session_minutes: int
    activity: float  # expected workouts per week
    category_affinity: dict[str, float] = field(hash=False)
    region: str
    subscriber: bool = False


@dataclass(frozen=True)
class Population:
    """The same users as numpy columns, plus the behavioural and health baselines."""

    ids: list[str]
    goal: np.ndarray  # int8 into GOALS
    level: np.ndarray  # int8 into LEVELS
    has: np.ndarray  # int64 equipment bitmask (ItemTable.equipment)
    session: np.ndarray  # float minutes
    activity: np.ndarray  # workouts per week
    affinity: np.ndarray  # (n, n_categories)
    region: np.ndarray  # int8 into REGIONS
    subscriber: np.ndarray  # bool
    open_rate: np.ndarray  # probability of opening the app on a day
    app_hour: np.ndarray  # preferred hour of day for the app
    workout_hour: np.ndarray
    sync_offset: np.ndarray  # ms after day start of the daily health sync
    created_day: np.ndarray  # calendar day index in the window
    created_at: np.ndarray  # ms since epoch
    steps: np.ndarray  # daily steps baseline
    resting_hr: np.ndarray
    sleep: np.ndarray  # minutes
    weight: np.ndarray  # kg at sign-up
    weigh_rate: np.ndarray  # probability of stepping on a scale on a day
    strain_sd: np.ndarray  # how much life strain (stress, illness, bad nights) swings from day to day
    strain0: np.ndarray  # strain on the first day

    def __len__(self) -> int:
        return len(self.ids)


def draw_population(rng: np.random.Generator, *, n: int, table: ItemTable, window: Window) -> Population:
    goal = rng.choice(len(GOALS), size=n, p=GOAL_SHARE).astype(np.int8)
    level = rng.choice(len(LEVELS), size=n, p=LEVEL_SHARE).astype(np.int8)
    kit = rng.choice(len(KITS), size=n, p=[k[1] for k in KITS])
    has = np.zeros(n, dtype=np.int64)
    everything = table.mask_of(table.equipment)
    for k, (name, _, owned) in enumerate(KITS):
        rows = kit == k
        if name == "gym":
            has[rows] = everything
            continue
        for j, piece in enumerate(owned):
            # Home users own each piece with some probability; the first piece always.
            keep = rows & ((rng.random(n) < 0.55) | (j == 0) | (name != "home"))
            has[keep] |= table.mask_of([piece])
    session = np.clip(np.round(np.array(GOAL_MINUTES)[goal] * rng.lognormal(0, 0.3, n) / 5) * 5, 10, 120)
    activity = np.clip(rng.gamma(4.0, 0.7, n) + 0.6 * level, 0.5, 7.0).round(2)
    # Tastes for categories; goal categories are liked a little more on average.
    affinity = rng.normal(0.0, 0.8, (n, len(table.categories))) + 0.3 * table.serves[goal]
    region = rng.choice(len(REGIONS), size=n, p=REGION_SHARE).astype(np.int8)
    subscriber = rng.random(n) < 0.08 + 0.04 * level
    open_rate = np.clip(0.1 + 0.07 * activity + rng.normal(0, 0.05, n), 0.05, 0.85)
    app_hour = np.where(rng.random(n) < 0.45, rng.normal(8, 1.2, n), rng.normal(19, 1.5, n))
    workout_hour = np.where(rng.random(n) < 0.4, rng.normal(7, 1, n), rng.normal(18, 1, n))
    sync_offset = (rng.uniform(22.5, 23.9, n) * HOUR).astype(np.int64)
    # Half the users sign up on the first whole day; the others during the window's first half.
    first = 0 if window.start_ms == window.origin else 1
    later = first + rng.integers(0, max(1, (window.days - first) // 2), n)
    created_day = np.where(rng.random(n) < 0.5, first, later).astype(np.int64)
    created_at = np.asarray(window.day_start(created_day)) + (rng.uniform(0.05, 6, n) * HOUR).astype(np.int64)
    # Windows too short for that (a day or less) get their sign-ups in their first quarter.
    late = created_at >= window.end_ms - HOUR
    early = window.start_ms + rng.uniform(0, (window.end_ms - window.start_ms) / 4, n).astype(np.int64)
    created_at = np.where(late, early, created_at)
    created_day = np.where(late, (created_at - window.origin) // DAY_MS, created_day)
    steps = np.clip(2500 + 1100 * activity, 1000, None) * rng.lognormal(0, 0.25, n)
    resting_hr = np.clip(rng.normal(74 - 5 * level, 5, n), 45, 95)
    sleep = np.clip(rng.normal(420, 35, n), 300, 540)
    weight = np.clip(rng.normal(np.where(goal == GOALS.index("lose_weight"), 92, 76), 12, n), 45, 180)
    weigh_rate = rng.uniform(0.1, 0.9, n)
    strain_sd = rng.uniform(0.6, 1.3, n)
    strain0 = rng.normal(0.0, strain_sd)
    return Population(
        ids=[f"u-{i + 1:05d}" for i in range(n)],
        goal=goal,
        level=level,
        has=has,
        session=session,
        activity=activity,
        affinity=affinity,
        region=region,
        subscriber=subscriber,
        open_rate=open_rate,
        app_hour=app_hour,
        workout_hour=workout_hour,
        sync_offset=sync_offset,
        created_day=created_day,
        created_at=created_at,
        steps=steps,
        resting_hr=resting_hr,
        sleep=sleep,
        weight=weight,
        weigh_rate=weigh_rate,
        strain_sd=strain_sd,
        strain0=strain0,
    )


def equipment_of(pop: Population, table: ItemTable, u: int) -> tuple[str, ...]:
    owned = [name for b, name in enumerate(table.equipment) if (int(pop.has[u]) >> b) & 1]
    return (*FREE_EQUIPMENT, *owned)


def sim_users(pop: Population, table: ItemTable) -> list[SimUser]:
    return [
        SimUser(
            user_id=pop.ids[u],
            goal=GOALS[pop.goal[u]],
            fitness_level=LEVELS[pop.level[u]],
            equipment=equipment_of(pop, table, u),
            session_minutes=int(pop.session[u]),
            activity=float(pop.activity[u]),
            category_affinity={c: float(a) for c, a in zip(table.categories, pop.affinity[u], strict=True)},
            region=REGIONS[pop.region[u]],
            subscriber=bool(pop.subscriber[u]),
        )
        for u in range(len(pop))
    ]
