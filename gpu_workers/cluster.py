"""Connect to Ray: a local one started here by default, or the cluster named by RAY_ADDRESS."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parent.parent


def ray_connect(*, address: str = "", num_cpus: int | None = None) -> ModuleType:
    """Initialise Ray once per process and return the module.

    An empty address starts a local Ray (no dashboard; auth off, as Ray 2.60 asks for local clusters).
    Workers started here import `learning` and `gpu_workers` from this checkout through PYTHONPATH.
    """
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(REPO_ROOT) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *paths])
    import ray

    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    return ray


def cluster_has_gpu() -> bool:
    """Return whether the connected cluster offers at least one GPU."""
    import ray

    return ray.cluster_resources().get("GPU", 0) >= 1
