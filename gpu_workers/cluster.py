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
            # "local": always a new Ray of this process's own, never a cluster another `ray start` left running.
            ray.init(
                address="local",
                num_cpus=num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
    return ray


def cluster_has_gpu() -> bool:
    """Return whether the connected cluster offers at least one GPU."""
    import ray

    return ray.cluster_resources().get("GPU", 0) >= 1


def cluster_status() -> dict[str, object]:
    """What the connected Ray cluster offers now: alive nodes, CPUs and GPUs (for health checks and the status file).

    Raises when Ray is not initialised in this process or its GCS does not answer.
    """
    import ray

    if not ray.is_initialized():
        raise RuntimeError("Ray is not initialised in this process")
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    resources = ray.cluster_resources()
    return {"alive_nodes": len(nodes), "cpus": resources.get("CPU", 0.0), "gpus": resources.get("GPU", 0.0)}
