"""What the simulated users do, day by day, vectorised over users.

Every day: each user wakes with a recovery in [0, 1] (a latent state: life strain,
a persistent day-to-day process, and the training load of the last days); enrolled
users train from their plan, less often when poorly recovered; users open the app,
each open is a recommendation request answered by a logging policy that does not
know anyone's utility; users click with position bias x sigmoid(utility), enroll in
plans, view content and sometimes train from it, and both their choices and their
completions shun sessions harder than the day's recovery tolerates; every user
syncs the day's health metrics, whose sleep and resting heart rate show the strain
and the load.
"""

import numpy as np

from training.simulation.catalogue import ARTICLE, GOALS, GUIDE, LEVELS, PLAN, VIDEO, ItemTable
from training.simulation.columns import DAY_MS, Coded, Const, Days, EventBuffer, Ids, Nullable, Times
from training.simulation.population import HOUR, REGIONS, Population, Window
from training.simulation.utility import excess_intensity, level_term, utility

MINUTE = 60_000
SECOND = 1_000
SLATE = 10
MODEL_VERSION = "sim-logging-policy"
SOURCES = ("recommendation", "plan")
REC, FROM_PLAN = 0, 1
# Examination probability by slate position: people look at the top far more.
EXAMINE = 1.0 / (1.0 + np.arange(SLATE)) ** 0.75
CLICK_SLOPE, CLICK_BIAS = 1.1, -1.6
POPULAR_POOL = 100
# Latest hour of day an app open or a workout starts, so that everything a day sets
# off (clicks, views, workouts of at most 150 min) ends before the day's health sync.
LAST_START_HOUR = 19.0
MAX_WORKOUT_MIN = 150.0
# Exercise profiles: sets, reps per set, seconds per set, whether a load is used.
PROFILES = {  # name: (sets lo, sets hi, reps lo, reps hi, seconds lo, seconds hi, loaded)
    "strength": (3, 5, 6, 12, 0, 0, True),
    "powerlifting": (3, 6, 2, 6, 0, 0, True),
    "olympic weightlifting": (3, 6, 1, 5, 0, 0, True),
    "strongman": (3, 5, 3, 8, 0, 0, True),
    "plyometrics": (2, 4, 6, 15, 0, 0, False),
    "stretching": (1, 3, 0, 0, 20, 60, False),
    "cardio": (1, 1, 0, 0, 300, 1500, False),
}
# Beginner load range in kg per equipment; stronger users lift more.
LOADS = {
    "barbell": (20, 60),
    "dumbbell": (4, 16),
    "kettlebells": (8, 16),
    "cable": (10, 35),
    "machine": (15, 50),
    "e-z curl bar": (10, 25),
    "medicine ball": (3, 8),
    "other": (0, 20),
}
# Metabolic equivalents per workout category, for calories = MET x kg x hours.
METS = {"stretching": 2.5, "cardio": 8.0, "plyometrics": 8.0, "strength": 5.0}
DEFAULT_MET = 6.0
# Recovery: strain follows an AR(1) process with this day-to-day persistence; training load
# (hours x RPE / 10 of every workout) decays by LOAD_DECAY overnight.
STRAIN_PERSISTENCE = 0.6
LOAD_DECAY = 0.6
# recovery = sigmoid(RECOVERY_BIAS + RECOVERY_STRAIN * strain + RECOVERY_LOAD * load)
RECOVERY_BIAS, RECOVERY_STRAIN, RECOVERY_LOAD = 0.8, -1.3, -1.5
# Completion odds per unit of intensity above what recovery tolerates (on top of the utility's share).
COMPLETE_STRAIN = -2.0
# What strain and load do to the day's health metrics.
SLEEP_PER_STRAIN = -40.0  # minutes
HR_PER_STRAIN = 2.5  # bpm
HR_PER_LOAD = 2.0  # bpm
# Weight drift per day and per completed workout, by goal.
WEIGHT_PER_DAY = {"lose_weight": -0.03, "build_muscle": 0.01}
WEIGHT_PER_WORKOUT = {"lose_weight": -0.08, "build_muscle": 0.03, "build_strength": 0.02}
PRICES = {  # region: (amount in cents, currency, gateway)
    "US": (999, "USD", "stripe"),
    "GB": (899, "GBP", "stripe"),
    "DE": (999, "EUR", "stripe"),
    "FR": (999, "EUR", "stripe"),
    "ES": (999, "EUR", "stripe"),
    "CA": (1299, "CAD", "stripe"),
    "AU": (1499, "AUD", "stripe"),
    "BR": (2990, "BRL", "regional"),
    "IN": (49900, "INR", "regional"),
    "JP": (1500, "JPY", "regional"),
}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class Timeline:
    """Runs the population through the window and fills an EventBuffer."""

    def __init__(
        self,
        rng: np.random.Generator,
        *,
        table: ItemTable,
        pop: Population,
        quality: np.ndarray,
        window: Window,
        tag: str,
    ) -> None:
        self.rng, self.table, self.pop, self.quality = rng, table, pop, quality
        self.window = window
        self.out = EventBuffer()
        self.request_prefix = f"req-{tag}-"
        self.session_prefix = f"ses-{tag}-"
        self.tag = tag
        n = len(pop)
        self.n_requests = 0
        self.n_sessions = 0
        self.active_plan = np.full(n, -1, dtype=np.int64)
        self.plan_day = np.zeros(n, dtype=np.int64)
        self.plan_request = np.full(n, -1, dtype=np.int64)
        self.plan_first = np.zeros(n, dtype=bool)
        self.plan_utility = np.zeros(n)
        self.plan_sessions = np.zeros(n, dtype=np.int64)
        self.completed = np.zeros(n, dtype=np.int64)  # cumulative completed workouts
        self.weight_now = pop.weight.copy()
        self.minutes_today = np.zeros(n)
        self.strain = pop.strain0.copy()
        self.training_load = np.zeros(n)  # training load carried into the day
        self.load_today = np.zeros(n)
        self.recovery = np.ones(n)
        # The ground truth: each user's recovery on each day, and the day of each request.
        self.recovery_log = np.empty((window.days, n), dtype=np.float32)
        self.request_days: list[np.ndarray] = []
        # Logging policy: half of each slate from an editorial "popular" list (plans and
        # videos favoured, item quality only as a noisy hint), half uniformly random.
        prior = (
            quality
            + 0.9 * (table.kind == PLAN)
            + 0.5 * (table.kind == VIDEO)
            + 0.3 * (table.kind == ARTICLE)
            + rng.normal(0, 0.4, len(table))
        )
        self.popular = np.argsort(-prior, kind="stable")[:POPULAR_POOL]
        profile_names = list(PROFILES)
        self.profile_of_category = np.array(
            [profile_names.index(c) if c in PROFILES else 0 for c in table.categories], dtype=np.int64
        )
        self.profile = np.array([p[:6] for p in PROFILES.values()], dtype=np.int64)
        self.loaded = np.array([p[6] for p in PROFILES.values()], dtype=bool)
        loads = [LOADS.get(e, (0, 0)) for e in table.equipment] + [(0, 0)]  # index -1: free equipment
        self.load = np.array(loads, dtype=np.float64)
        self.met = np.array([METS.get(c, DEFAULT_MET) for c in table.categories])
        self.day_slope = np.array([WEIGHT_PER_DAY.get(g, -0.005) for g in GOALS])
        self.workout_slope = np.array([WEIGHT_PER_WORKOUT.get(g, -0.02) for g in GOALS])

    def run(self) -> EventBuffer:
        self._sign_ups()
        for day in range(self.window.days):
            self.minutes_today[:] = 0.0
            self.load_today[:] = 0.0
            self._wake(day)
            self._plan_workouts(day)
            self._app_opens(day)
            self.training_load = LOAD_DECAY * self.training_load + self.load_today
            self._health(day, self.minutes_today > 0)
        return self.out

    def u(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return utility(self.pop, self.table, self.quality, users, items, self.recovery[users])

    def _wake(self, day: int) -> None:
        """The day's recovery, then the day's strain.

        Recovery comes from what last evening's health sync showed: the strain of
        yesterday (in its sleep and resting heart rate) and the training load up to
        yesterday. Strain then moves on (stress, illness, bad nights), persistently.
        """
        z = RECOVERY_BIAS + RECOVERY_STRAIN * self.strain + RECOVERY_LOAD * self.training_load
        self.recovery = sigmoid(z)
        self.recovery_log[day] = self.recovery
        if day > 0:
            shock = self.rng.normal(0.0, 1.0, len(self.pop)) * self.pop.strain_sd
            self.strain = STRAIN_PERSISTENCE * self.strain + np.sqrt(1 - STRAIN_PERSISTENCE**2) * shock

    # -- sign-up, verification, subscriptions ---------------------------------

    def _sign_ups(self) -> None:
        rng, pop, n = self.rng, self.pop, len(self.pop)
        users = np.arange(n)
        equipment = [[name for b, name in enumerate(self.table.equipment) if (h >> b) & 1] for h in pop.has.tolist()]
        self.out.add(
            "user.created",
            ts=pop.created_at,
            user=users,
            goal=Coded(pop.goal, GOALS),
            fitness_level=Coded(pop.level, LEVELS),
            equipment=[["body only", "none", *e] for e in equipment],
            session_minutes=pop.session.astype(np.int64),
            region=Coded(pop.region, REGIONS),
        )
        verified = rng.random(n) < 0.88
        delay = rng.uniform(1 * MINUTE, 3 * HOUR, n).astype(np.int64)
        self.out.add("user.email_verified", ts=(pop.created_at + delay)[verified], user=users[verified])
        subs = np.flatnonzero(pop.subscriber)
        paid_at = pop.created_at[subs] + rng.uniform(0.5 * HOUR, 12 * HOUR, len(subs)).astype(np.int64)
        price = [PRICES[r] for r in REGIONS]
        region = pop.region[subs]
        currencies = sorted({p[1] for p in price})
        gateways = sorted({p[2] for p in price})
        self.out.add(
            "payment.completed",
            ts=paid_at,
            user=subs,
            payment_id=Ids(f"pay-{self.tag}-", np.arange(len(subs))),
            amount_cents=np.array([p[0] for p in price], dtype=np.int64)[region],
            currency=Coded(np.array([currencies.index(p[1]) for p in price])[region], currencies),
            gateway=Coded(np.array([gateways.index(p[2]) for p in price])[region], gateways),
        )
        self.out.add(
            "subscription.activated",
            ts=paid_at + 2 * SECOND,
            user=subs,
            subscription_id=Ids(f"sub-{self.tag}-", np.arange(len(subs))),
            plan_code=Const("premium_monthly"),
            renews_at=Times(paid_at + 30 * DAY_MS),
        )

    # -- plans ---------------------------------------------------------------------

    def _plan_workouts(self, day: int) -> None:
        rng, pop = self.rng, self.pop
        cand = np.flatnonzero((self.active_plan >= 0) & (self.plan_day < day))
        # Users train about as often as their activity says, less when the plan suits them poorly
        # and less when they are poorly recovered.
        fit = 0.5 + 0.5 * sigmoid(self.plan_utility[cand])
        p = np.clip(pop.activity[cand] / 7 * fit * (0.6 + 0.6 * self.recovery[cand]), 0, 0.9)
        go = cand[rng.random(len(cand)) < p]
        hour = np.clip(rng.normal(pop.workout_hour[go], 0.75), 5, LAST_START_HOUR)
        t0 = self.window.day_start(day) + (hour * HOUR).astype(np.int64)
        first = self.plan_first[go]
        # The first session after an enrollment is credited to the recommendation that led to it.
        self._workouts(
            go,
            self.active_plan[go],
            t0,
            source=np.where(first, REC, FROM_PLAN),
            request=np.where(first, self.plan_request[go], -1),
        )
        self.plan_first[go] = False
        self.plan_sessions[go] += 1
        drop = rng.random(len(go)) < 0.02 + 0.12 * (1 - sigmoid(self.plan_utility[go]))
        self.active_plan[go[drop | (self.plan_sessions[go] >= 36)]] = -1

    # -- app opens and recommendation slates ------------------------------------------

    def _slates(self, count: int) -> np.ndarray:
        rng, n_items = self.rng, len(self.table)
        size = min(SLATE, n_items)
        if n_items <= 4 * SLATE:
            return np.argsort(rng.random((count, n_items)), axis=1)[:, :size]
        n_pop = min(size // 2, len(self.popular))
        picks = np.argpartition(rng.random((count, len(self.popular))), n_pop - 1, axis=1)[:, :n_pop]
        slate = np.concatenate([self.popular[picks], rng.integers(0, n_items, (count, size - n_pop))], axis=1)
        while True:  # redraw the random part of slates that show an item twice (rare)
            ordered = np.sort(slate, axis=1)
            dup = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
            if dup.size == 0:
                break
            slate[dup, n_pop:] = rng.integers(0, n_items, (dup.size, size - n_pop))
        return np.take_along_axis(slate, np.argsort(rng.random(slate.shape), axis=1), axis=1)

    def _app_opens(self, day: int) -> None:
        rng, pop, table = self.rng, self.pop, self.table
        n = len(pop)
        day0 = self.window.day_start(day)
        alive = pop.created_day <= day
        opens = alive & (rng.random(n) < pop.open_rate)
        again = opens & (rng.random(n) < 0.15)
        users = np.concatenate([np.flatnonzero(opens), np.flatnonzero(again)])
        count = len(users)
        if count == 0:
            return
        hour = np.clip(rng.normal(pop.app_hour[users], 1.5), 0.1, LAST_START_HOUR)
        t = day0 + (hour * HOUR).astype(np.int64)
        new = pop.created_day[users] == day  # the sign-up day: after signing up
        after_signup = pop.created_at[users] + rng.uniform(5 * MINUTE, 10 * HOUR, count).astype(np.int64)
        t = np.where(new, after_signup, t)
        requests = self.n_requests + np.arange(count)
        self.n_requests += count
        self.request_days.append(np.full(count, day, dtype=np.int32))

        slate = self._slates(count)
        size = slate.shape[1]
        pos = np.broadcast_to(np.arange(size), slate.shape)
        shown_to = np.broadcast_to(users[:, None], slate.shape)
        u = self.u(shown_to, slate)
        req = np.broadcast_to(requests[:, None], slate.shape)
        self.out.add(
            "recommendation.impression",
            ts=(t[:, None] + pos).ravel(),
            user=shown_to.ravel(),
            item=slate.ravel(),
            request_id=Ids(self.request_prefix, req.ravel()),
            position=pos.ravel().astype(np.int64),
            model_version=Const(MODEL_VERSION),
            arm=Const("control"),
            surface=Const("home"),
        )
        clicked = rng.random(slate.shape) < EXAMINE[:size] * sigmoid(CLICK_SLOPE * u + CLICK_BIAS)
        click_at = (
            t[:, None] + 3 * SECOND + pos * 1500 + np.minimum(rng.exponential(15 * SECOND, slate.shape), 2 * MINUTE)
        ).astype(np.int64)
        self.out.add(
            "recommendation.clicked",
            ts=click_at[clicked],
            user=shown_to[clicked],
            item=slate[clicked],
            request_id=Ids(self.request_prefix, req[clicked]),
            position=pos[clicked].astype(np.int64),
        )
        dismissed = ~clicked & (rng.random(slate.shape) < 0.03 * sigmoid(-u))
        dismiss_at = t[:, None] + rng.uniform(2 * SECOND, 30 * SECOND, slate.shape).astype(np.int64)
        self.out.add(
            "recommendation.dismissed",
            ts=dismiss_at[dismissed],
            user=shown_to[dismissed],
            item=slate[dismissed],
            request_id=Ids(self.request_prefix, req[dismissed]),
            position=pos[dismissed].astype(np.int64),
        )
        c_user, c_item, c_req, c_at, c_u = (
            shown_to[clicked],
            slate[clicked],
            req[clicked],
            click_at[clicked],
            u[clicked],
        )
        kind = table.kind[c_item]
        self._enroll(day, *(a[kind == PLAN] for a in (c_user, c_item, c_req, c_at, c_u)))
        content = kind != PLAN
        self._view(*(a[content] for a in (c_user, c_item, c_req, c_at, c_u)))

    def _enroll(
        self, day: int, users: np.ndarray, plans: np.ndarray, requests: np.ndarray, click_at: np.ndarray, u: np.ndarray
    ) -> None:
        rng = self.rng
        joined = rng.random(len(users)) < 0.85 * sigmoid(1.5 * u)
        users, plans, requests, u = users[joined], plans[joined], requests[joined], u[joined]
        at = click_at[joined] + rng.uniform(20 * SECOND, 3 * MINUTE, len(users)).astype(np.int64)
        self.out.add(
            "plan.enrolled",
            ts=at,
            user=users,
            item=plans,
            source=Const("recommendation"),
            request_id=Ids(self.request_prefix, requests),
        )
        # A user enrolled twice in a day follows the later plan.
        order = np.argsort(at, kind="stable")[::-1]
        _, first = np.unique(users[order], return_index=True)
        last = order[first]
        who = users[last]
        self.active_plan[who] = plans[last]
        self.plan_day[who] = day
        self.plan_request[who] = requests[last]
        self.plan_first[who] = True
        self.plan_utility[who] = u[last]
        self.plan_sessions[who] = 0

    def _view(
        self, users: np.ndarray, items: np.ndarray, requests: np.ndarray, click_at: np.ndarray, u: np.ndarray
    ) -> None:
        rng, table = self.rng, self.table
        count = len(users)
        kind = table.kind[items]
        like = sigmoid(u)
        seconds = np.select(
            [kind == ARTICLE, kind == VIDEO],
            [
                30 + 420 * like * rng.uniform(0.5, 1.5, count),
                np.minimum(table.duration[items], 45) * 60 * np.clip(like + rng.normal(0, 0.15, count), 0.05, 1.0),
            ],
            default=20 + 160 * like * rng.uniform(0.5, 1.5, count),
        ).astype(np.int64)
        viewed_at = click_at + rng.uniform(1 * SECOND, 5 * SECOND, count).astype(np.int64)
        self.out.add(
            "content.viewed",
            ts=viewed_at,
            user=users,
            item=items,
            seconds=seconds,
            source=Const("recommendation"),
            request_id=Ids(self.request_prefix, requests),
        )
        # Guides and videos sometimes turn into a workout right away.
        p = np.where(kind == VIDEO, 0.4, np.where(kind == GUIDE, 0.2, 0.0)) * sigmoid(1.2 * u)
        go = rng.random(count) < p
        start = (
            viewed_at[go] + seconds[go] * SECOND + rng.uniform(1 * MINUTE, 15 * MINUTE, int(go.sum())).astype(np.int64)
        )
        self._workouts(users[go], items[go], start, source=np.full(int(go.sum()), REC), request=requests[go])

    # -- workouts ------------------------------------------------------------------

    def _workouts(
        self, users: np.ndarray, items: np.ndarray, t0: np.ndarray, *, source: np.ndarray, request: np.ndarray
    ) -> None:
        rng, pop, table = self.rng, self.pop, self.table
        count = len(users)
        if count == 0:
            return
        sessions = self.n_sessions + np.arange(count)
        self.n_sessions += count
        available = table.n_exercises[items].astype(np.int64)
        planned = np.minimum(available, rng.integers(3, 7, count))
        offset = rng.integers(0, available)
        u = self.u(users, items)
        # Completion rises with utility and falls fast when the workout is too hard, for the
        # user's level or for the day's recovery.
        strained = excess_intensity(table, items, self.recovery[users])
        odds = 0.8 + 0.6 * u + 0.8 * level_term(pop, table, users, items) + COMPLETE_STRAIN * strained
        done = rng.random(count) < sigmoid(odds)
        logged = np.where(done, planned, rng.integers(0, planned))
        base = np.where(table.kind[items] == GUIDE, rng.uniform(10, 25, count), table.duration[items])
        minutes = np.clip(base * rng.lognormal(0, 0.15, count), 5, MAX_WORKOUT_MIN).round(1)
        elapsed = np.where(done, minutes, minutes * (logged + 0.5) / (planned + 1))
        np.add.at(self.minutes_today, users, elapsed)
        np.add.at(self.completed, users[done], 1)

        self.out.add(
            "workout.started",
            ts=t0,
            user=users,
            item=items,
            session_id=Ids(self.session_prefix, sessions),
            source=Coded(source, SOURCES),
            request_id=Ids(self.request_prefix, request),
        )
        of = np.repeat(np.arange(count), logged)
        step = np.arange(len(of)) - np.repeat(np.cumsum(logged) - logged, logged)
        exercise = table.exercises[items[of], (offset[of] + step) % available[of]]
        sets, reps, seconds, load, rpe = self._sets(users[of], exercise, done[of])
        at = t0[of] + (minutes[of] * (step + 1) / (planned[of] + 1) * MINUTE).astype(np.int64)
        self.out.add(
            "exercise.logged",
            ts=at,
            user=users[of],
            item=items[of],
            session_id=Ids(self.session_prefix, sessions[of]),
            exercise_id=Coded(exercise, table.exercise_ids),
            sets=sets,
            reps=reps,
            duration_s=seconds,
            weight_kg=load,
            rpe=rpe,
        )
        total_sets = np.bincount(of, weights=sets, minlength=count).astype(np.int64)
        total_reps = np.bincount(of, weights=sets * reps, minlength=count).astype(np.int64)
        mean_rpe = np.bincount(of, weights=rpe, minlength=count) / np.maximum(logged, 1)
        # Training load: hours x RPE / 10 (session RPE), abandoned sessions count for what was done.
        np.add.at(self.load_today, users, elapsed / 60 * np.clip(np.where(logged > 0, mean_rpe, 5.0), 1, 10) / 10)
        category = table.category[items]
        calories = np.minimum(self.met[category] * self.weight_now[users] * minutes / 60, 5000)
        fin = np.flatnonzero(done)
        self.out.add(
            "workout.completed",
            ts=t0[fin] + (minutes[fin] * MINUTE).astype(np.int64),
            user=users[fin],
            item=items[fin],
            session_id=Ids(self.session_prefix, sessions[fin]),
            duration_min=minutes[fin],
            total_sets=total_sets[fin],
            total_reps=total_reps[fin],
            calories=calories[fin].round(1),
            rpe=np.clip(mean_rpe[fin], 1, 10).round(1),
            category=Coded(category[fin], table.categories),
        )

    def _sets(
        self, users: np.ndarray, exercise: np.ndarray, done: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        rng, table = self.rng, self.table
        count = len(users)
        profile = self.profile_of_category[table.exercise_category[exercise]]
        s_lo, s_hi, r_lo, r_hi, d_lo, d_hi = self.profile[profile].T
        sets = rng.integers(s_lo, s_hi + 1)
        reps = rng.integers(r_lo, r_hi + 1)
        seconds = rng.integers(d_lo, d_hi + 1) * sets
        level = self.pop.level[users].astype(np.float64)
        lo, hi = self.load[table.exercise_equipment[exercise]].T
        load = np.where(self.loaded[profile], rng.uniform(lo, hi) * (1 + 0.45 * level), 0.0)
        gap = table.exercise_level[exercise] - level
        # The same exercise feels harder when poorly recovered.
        tired = 1.0 * (0.6 - self.recovery[users])
        effort = 6.2 + 1.2 * gap + rng.normal(0, 0.9, count) + np.where(done, 0.0, 0.8) + tired
        rpe = np.clip(np.round(effort * 2) / 2, 1, 10)
        return sets, reps, seconds, np.round(load * 2) / 2, rpe

    # -- health --------------------------------------------------------------------

    def _health(self, day: int, worked: np.ndarray) -> None:
        rng, pop = self.rng, self.pop
        at = self.window.day_start(day) + pop.sync_offset
        users = np.flatnonzero((pop.created_day < day) | ((pop.created_day == day) & (at > pop.created_at)))
        at = at[users]
        count = len(users)
        if count == 0:
            return
        minutes = self.minutes_today[users]
        trained = worked[users]
        steps = np.clip(
            pop.steps[users] * rng.lognormal(0, 0.22, count) + np.where(trained, 1500 + 70 * minutes, 0), 0, 150_000
        ).astype(np.int64)
        active = np.clip(steps / 160 + minutes + rng.normal(0, 5, count), 0, 1440).astype(np.int64)
        # Resting heart rate drifts down slowly as completed workouts add up; strain and recent
        # training load push it up for a few days. Strain also shortens sleep.
        fitter = np.minimum(7.0, 0.06 * self.completed[users])
        strain, load = self.strain[users], self.training_load[users]
        resting = pop.resting_hr[users] - fitter + HR_PER_STRAIN * strain + HR_PER_LOAD * load
        resting = np.clip(resting + rng.normal(0, 1.0, count), 38, 120).round(1)
        slept = pop.sleep[users] + SLEEP_PER_STRAIN * strain + np.where(trained, 12, 0)
        sleep = np.clip(rng.normal(slept, 25), 180, 720).astype(np.int64)
        goal = pop.goal[users]
        weight = (
            pop.weight[users]
            + self.day_slope[goal] * (day - pop.created_day[users])
            + self.workout_slope[goal] * self.completed[users]
        )
        weight = np.clip(weight + rng.normal(0, 0.3, count), 30, 350).round(1)
        self.weight_now[users] = weight
        weighed = rng.random(count) < pop.weigh_rate[users]
        self.out.add(
            "health_metric.synced",
            ts=at,
            user=users,
            day=Days(at // DAY_MS),
            steps=steps,
            active_minutes=active,
            resting_hr=resting,
            sleep_minutes=sleep,
            weight_kg=Nullable(np.where(weighed, weight, np.nan)),
            source=Const("sim"),
        )
