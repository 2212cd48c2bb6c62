"""Helpers the test modules share (tests/ is on sys.path through its conftest)."""

import email
import email.policy
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from platform_api.catalogue.service import Item
from serving.ranking.model_holder import LoadedModel


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """The app under a real uvicorn on a free port, in a thread, as `fitrec serve` runs it
    (uvicorn's own forwarded-header handling off); yields its base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", proxy_headers=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def running_worker(
    data_dir: Path,
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
    feast_project: str = "fitrec",
    jobs: Mapping[str, Any] | None = None,
    **settings: Any,
) -> Iterator[Any]:
    """`fitrec worker` on the data folder, in a thread (the leader once it yields), as the API's companion:
    pushes every 0.5 s and loads impressions every second unless told otherwise."""
    from pipelines.config import WorkerSettings
    from pipelines.worker import Worker

    values: dict[str, Any] = {"push_interval_s": 0.5, "served_load_s": 1.0, "email_relay_s": 0} | settings
    worker_settings = WorkerSettings(
        FITREC_DATA_DIR=data_dir,
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        FITREC_FEAST_PROJECT=feast_project,
        **values,
    )
    worker = Worker(worker_settings, dict(jobs or {}))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True, name="test-worker")
    thread.start()
    deadline = time.monotonic() + 60
    while not worker.leader:
        assert thread.is_alive() and time.monotonic() < deadline, "the worker did not start leading"
        time.sleep(0.05)
    try:
        yield worker
    finally:
        stop.set()
        thread.join(timeout=60)


class Inbox:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


def synthetic_ranking_set(n_groups: int, *, seed: int, slate: int = 8) -> pd.DataFrame:
    """Relevance rises with `fit` and is highest for category "b"; `noise` carries nothing."""
    rng = np.random.default_rng(seed)
    n = n_groups * slate
    frame = pd.DataFrame(
        {
            "request_id": np.repeat([f"s{seed}-r{i}" for i in range(n_groups)], slate),
            "fit": rng.random(n),
            "category": rng.choice(["a", "b", "c"], n),
            "noise": rng.random(n),
            "position": np.tile(np.arange(slate), n_groups),
        }
    )
    utility = frame["fit"] + np.where(frame["category"] == "b", 0.6, 0.0) + rng.normal(0, 0.15, n)
    frame["label"] = np.digitize(utility, [0.9, 1.2, 1.45])
    return frame


@dataclass(frozen=True)
class TrainedStack:
    """A trained embedded data folder: serve it with `ServingSettings(FITREC_DATA_DIR=data_dir, ...)`."""

    data_dir: Path
    api_key: str  # a service key with recommendations:read (the app backend's)
    end: datetime  # the simulation's last moment
    users: int


def build_trained_stack(data_dir: Path, *, users: int = 200, days: int = 30, seed: int = 5) -> TrainedStack:
    """Seed, simulate, build features and train (no two-tower: the tests need a served model, not its quality)."""
    from pipelines.build_features import build_features
    from pipelines.config import PipelineSettings
    from pipelines.simulate import simulate_into_platform
    from pipelines.train import run_training
    from platform_api.auth.api_keys import create_api_key
    from platform_api.catalogue.service import list_items, seed_catalogue
    from platform_api.runtime import open_platform
    from training.steps import TrainingConfig

    settings = PipelineSettings(FITREC_DATA_DIR=data_dir, DATABASE_URL=None, REDIS_URL=None)
    platform = open_platform(settings.platform())
    with platform.sessions() as session:
        seed_catalogue(session)
        items = list_items(session)
        _, secret = create_api_key(session, name="app backend", scopes=["recommendations:read"], created_by=None)
        session.commit()
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    simulate_into_platform(platform.sessions, items=items, users=users, days=days, seed=seed, end=end)
    platform.close()
    build_features(settings)
    run_training(settings, config=TrainingConfig(two_tower=False))
    return TrainedStack(data_dir=data_dir, api_key=secret, end=end, users=users)


# --- fakes of the model and the online store, for the ranking path (pure logic and fault tests) ---

CATEGORIES = ("cardio", "strength", "stretching", "plyometrics")


def make_item(i: int, **overrides: Any) -> Item:
    values: dict[str, Any] = {
        "item_id": f"it-{i}",
        "item_type": "plan",
        "title": f"Item {i}",
        "category": CATEGORIES[i % len(CATEGORIES)],
        "level": "beginner",
        "goal": "endurance",
        "equipment": ("body only",),
        "muscles": (),
        "duration_min": 30,
        "premium": False,
    }
    values.update(overrides)
    return Item(**values)


def fake_items() -> list[Item]:
    items = [make_item(i) for i in range(40)]
    items[1] = make_item(1, equipment=("barbell",))  # needs a barbell
    items[2] = make_item(2, premium=True)
    items[3] = make_item(3, level="expert")
    items[4] = make_item(4, category="powerlifting", level="intermediate")  # hard
    return items


class FakeOnline:
    """The online store: one user row per user, item features the path assembles."""

    def __init__(self, users: Mapping[str, dict[str, Any]]) -> None:
        self.users = users
        self.reads = 0

    def readable(self, refs: Sequence[str]) -> list[str]:
        return list(refs)

    def user_row(self, user_id: str, extra: Sequence[str] = ()) -> dict[str, Any]:
        self.reads += 1
        return dict(self.users.get(user_id, {}))

    def assemble(self, user: Mapping[str, Any], item_ids: Sequence[str]) -> pd.DataFrame:
        # it-N scores N (other ids, as the real catalogue's, score 0)
        quality = [float(i[3:]) if i.startswith("it-") and i[3:].isdigit() else 0.0 for i in item_ids]
        return pd.DataFrame(
            {"quality": quality, "item_intensity": [0.85 if i == "it-4" else 0.3 for i in item_ids]},
            index=pd.Index(list(item_ids), name="item_id"),
        )


class FakeRanker:
    """Scores by `quality` (item number): it-39 is best; attributes every score to quality."""

    feature_names = ("quality",)

    def __init__(self) -> None:
        self.calls = 0

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        self.calls += 1
        return frame["quality"].to_numpy(dtype=float)

    def contributions(self, frame: pd.DataFrame) -> tuple[list[str], np.ndarray]:
        return ["quality"], frame[["quality"]].to_numpy(dtype=float)


class FakeArms:
    """Every user on the champion arm, served by `ranker` as `version`."""

    def __init__(self, ranker: Any, version: str = "3") -> None:
        self.current = LoadedModel(version=version, ranker=ranker) if ranker else None

    def for_user(self, user_id: str) -> tuple[str, LoadedModel | None]:
        return "champion", self.current
