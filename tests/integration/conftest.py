"""Fixtures of the integration tests."""

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from support import TrainedStack


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One small local Ray for the whole test session (about 3-10 s to start on 2 cores), shut down after.

    The root conftest removed RAY_ADDRESS, so this is never a shared cluster.
    """
    import ray

    from training.ray_runtime import RaySettings, ensure_ray

    started = not ray.is_initialized()
    ensure_ray(RaySettings(address=None, num_cpus=2))
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def served_stack(tmp_path_factory: pytest.TempPathFactory) -> "TrainedStack":
    """One trained embedded stack (catalogue, simulated events, features, a registered champion) that the
    serving tests start their apps on; each test uses users and items of its own, so they do not collide."""
    from support import build_trained_stack

    return build_trained_stack(tmp_path_factory.mktemp("served-stack"))
