"""One local Ray for the whole test session (starting one costs a few seconds)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def local_ray():
    """Start a local 2-CPU Ray without dashboard or auth and shut it down after the session."""
    from gpu_workers.cluster import ray_connect

    ray = ray_connect(address="", num_cpus=2)
    yield ray
    ray.shutdown()
