"""One Ray for the process: a cluster when `RAY_ADDRESS` is set, else a small local instance.

`ensure_ray()` is idempotent (a Ray already initialised, by a test fixture or a caller, is kept).
Local Ray gets `num_cpus` (default 2: the machine is shared), no dashboard and no worker log forwarding.
`RaySettings` also sizes Ray Train (`FITREC_RAY_TRAIN_WORKERS`, `FITREC_RAY_CPUS_PER_WORKER`) and names
the storage Train and Tune persist results and checkpoints to (`FITREC_RAY_STORAGE_PATH`): on a cluster
it must be shared by every node and the driver (s3://…, NFS); locally a temporary folder is used.

Cluster nodes run the same image as the driver (fitrec installed), so `models` and `training` import there.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FITREC_RAY_", extra="ignore", populate_by_name=True)

    address: str | None = Field(None, validation_alias=AliasChoices("RAY_ADDRESS"))
    num_cpus: int = Field(2, ge=1, description="CPUs of a local Ray (ignored on a cluster)")
    train_workers: int = Field(
        1, ge=0, description="Ray Train workers of a PyTorch fit (0: Ray Train's local mode, in this process)"
    )
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs each Ray Train worker or Tune trial reserves")
    storage_path: str | None = Field(None, description="where Train/Tune persist results (shared on a cluster)")

    @property
    def local(self) -> bool:
        return not self.address


def ensure_ray(settings: RaySettings | None = None) -> None:
    """Initialise Ray once: connect to `RAY_ADDRESS`, or start a local instance of `num_cpus` CPUs."""
    import ray

    if ray.is_initialized():
        return
    settings = settings or RaySettings()
    if settings.address:
        ray.init(address=settings.address, log_to_driver=False)
    else:
        ray.init(
            num_cpus=settings.num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            # Ray Train's controller polls its workers every 2 s by default: on a local Ray of small
            # fits that is seconds of idle wait at the end of every run.
            runtime_env={"env_vars": {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2"}},
        )


def scaling_config(settings: RaySettings | None = None, *, num_workers: int | None = None) -> Any:
    """Ray Train's ScalingConfig from the settings (CPU workers)."""
    from ray.train import ScalingConfig

    settings = settings or RaySettings()
    return ScalingConfig(
        num_workers=settings.train_workers if num_workers is None else num_workers,
        use_gpu=False,
        resources_per_worker={"CPU": settings.cpus_per_worker},
    )


@contextmanager
def storage(settings: RaySettings | None = None) -> Iterator[str]:
    """The storage path of one Train or Tune run: the configured one, or a temporary folder removed after."""
    settings = settings or RaySettings()
    if settings.storage_path:
        yield settings.storage_path
        return
    if not settings.local:
        raise ValueError("a Ray cluster needs FITREC_RAY_STORAGE_PATH: storage every node and the driver reach")
    path = tempfile.mkdtemp(prefix="fitrec-ray-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
