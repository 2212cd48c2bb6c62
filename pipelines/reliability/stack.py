"""A trained fitrec stack for the reliability suite: data folder, database, cache, model, app process.

Two profiles, as in DESIGN.md: `embedded` (SQLite, in-process cache, SQLite online store) and
`production` (a private PostgreSQL and a private Redis, started here on free ports).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from pipelines.build_features import build_features
from pipelines.config import PipelineSettings
from pipelines.reliability.servers import PrivatePostgres, PrivateRedis, free_port
from pipelines.simulate import simulate_into_platform
from pipelines.train import run_training
from platform_api.auth.api_keys import create_api_key
from platform_api.auth.schemas import Profile
from platform_api.auth.service import new_user, start_session
from platform_api.catalogue.service import list_items, seed_catalogue
from platform_api.runtime import Platform, open_platform

USERS, DAYS, SEED = 120, 30, 5
SERVICE_SCOPES = ["recommendations:read", "feedback:write", "events:write"]


@dataclass
class Credentials:
    """Headers of each kind of caller the suite plays."""

    user: dict[str, str]
    admin: dict[str, str]
    service: dict[str, str]
    user_id: str
    none: dict[str, str] = field(default_factory=dict)

    def by_name(self) -> dict[str, dict[str, str]]:
        return {"anonymous": self.none, "user": self.user, "admin": self.admin, "service key": self.service}


@dataclass
class Stack:
    profile: str
    data_dir: Path
    redis: PrivateRedis | None = None
    postgres: PrivatePostgres | None = None
    credentials: Credentials | None = None

    @property
    def database_url(self) -> str | None:
        return self.postgres.url if self.postgres else None

    @property
    def redis_url(self) -> str | None:
        return self.redis.url if self.redis else None

    def settings(self) -> PipelineSettings:
        return PipelineSettings(FITREC_DATA_DIR=self.data_dir, DATABASE_URL=self.database_url, REDIS_URL=self.redis_url)

    def env(self, **extra: str) -> dict[str, str]:
        """The app's environment: this stack's stores, nothing inherited that points elsewhere."""
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "MLFLOW_TRACKING_URI"}}
        env["FITREC_DATA_DIR"] = str(self.data_dir)
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        env.update(extra)
        return env

    def renew_credentials(self) -> None:
        """New callers (access tokens expire after 15 minutes)."""
        platform = open_platform(self.settings().platform())
        try:
            self.credentials = _credentials(platform)
        finally:
            platform.close()

    def close(self) -> None:
        if self.redis:
            self.redis.stop()
        if self.postgres:
            self.postgres.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def build_stack(profile: str) -> Stack:
    """Seed, simulate, build features, train and register: a stack ready to serve."""
    stack = Stack(profile=profile, data_dir=Path(tempfile.mkdtemp(prefix=f"fitrec-reliability-{profile}-")))
    if profile == "production":
        stack.postgres = PrivatePostgres().start()
        stack.redis = PrivateRedis().start()
    settings = stack.settings()
    platform = open_platform(settings.platform())
    try:
        with platform.sessions() as session:
            seed_catalogue(session)
            items = list_items(session)
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        simulate_into_platform(platform.sessions, items=items, users=USERS, days=DAYS, seed=SEED, end=end)
    finally:
        platform.close()
    build_features(settings)
    run_training(settings)
    stack.renew_credentials()
    return stack


def _credentials(platform: Platform) -> Credentials:
    def bearer(role: str) -> tuple[dict[str, str], str]:
        with platform.sessions() as session:
            user = new_user(
                session,
                email=f"{role}-{time.time_ns()}@reliability.test",
                password_hash=None,
                profile=Profile(),
                verified=True,
                role=role,
            )
            pair = start_session(session, settings=platform.settings, user=user, method="password", client_address=None)
            session.commit()
            return {"Authorization": f"Bearer {pair.access_token}"}, user.id

    user, user_id = bearer("user")
    admin, _ = bearer("admin")
    with platform.sessions() as session:
        _, secret = create_api_key(session, name="reliability", scopes=SERVICE_SCOPES, created_by=None)
        session.commit()
    return Credentials(user=user, admin=admin, service={"X-API-Key": secret}, user_id=user_id)


class AppProcess:
    """The API as its own uvicorn process, so faults, memory and descriptors are the server's own."""

    def __init__(self, env: dict[str, str], *, log_path: Path) -> None:
        self.env = env
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout_s: float = 120) -> "AppProcess":
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "serving.app:create_app", "--factory", "--host", "127.0.0.1"]
            + ["--port", str(self.port), "--log-level", "warning", "--no-access-log", "--no-proxy-headers"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.base}/health/live", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the app did not start within {timeout_s} s; see {self.log_path}")

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def open_fds(self) -> int:
        assert self.proc is not None
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
