"""Fixtures of the integration tests."""

from collections.abc import Iterator

import pytest


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
