"""The orchestrator's status file: written by its loop, read by `manage.py healthcheck --orchestrator`.

A web process is probed over HTTP (webapp/health.py); the orchestrator serves no HTTP, so its loop writes what it
knows (when it last went round, its backend, and the Ray cluster it is connected to) to a small JSON file that a
container's exec probe checks. The file is replaced atomically, so a probe never reads half of one.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

RAY_CHECK_EVERY_SECONDS = 15.0


@dataclass
class OrchestratorStatus:
    """Writes the status file; asks Ray about the cluster at most every RAY_CHECK_EVERY_SECONDS."""

    backend: str
    path: Path | None = None
    _ray: dict[str, object] | None = None
    _ray_checked: float = 0.0

    def write(self, *, job_ids: list[int] | None = None) -> None:
        """Record a round of the loop and the jobs it is running (they may take a while)."""
        now = time.time()
        if self.backend == "ray" and now - self._ray_checked >= RAY_CHECK_EVERY_SECONDS:
            from gpu_workers.cluster import cluster_status

            try:
                self._ray = {"ok": True, **cluster_status()}
            except Exception as error:  # noqa: BLE001 — an unreachable cluster is a state to report, not a crash
                self._ray = {"ok": False, "error": type(error).__name__}
            self._ray_checked = now
        path = Path(self.path or settings.LUMEN_ORCHESTRATOR_STATUS_FILE)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"time": now, "pid": os.getpid(), "backend": self.backend, "ray": self._ray, "jobs": job_ids or []}
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(json.dumps(body))
        os.replace(partial, path)


def orchestrator_status_problems(*, path: Path, max_age_seconds: float) -> list[str]:
    """Return why the orchestrator whose status file is `path` is unhealthy (an empty list: it is healthy)."""
    try:
        status = json.loads(path.read_text())
    except FileNotFoundError:
        return [f"no status file at {path}: the orchestrator has not started its loop"]
    except (OSError, ValueError) as error:
        return [f"status file {path} is unreadable ({type(error).__name__})"]
    problems = []
    age = time.time() - float(status.get("time", 0))
    if age > max_age_seconds and not _jobs_alive(status.get("jobs") or [], max_age_seconds):
        problems.append(f"the orchestrator's loop last went round {age:.0f} s ago (limit {max_age_seconds:.0f} s)")
    if status.get("backend") == "ray":
        ray = status.get("ray") or {}
        if not ray.get("ok"):
            problems.append(f"Ray cluster unreachable ({ray.get('error', 'not checked yet')})")
        elif not ray.get("alive_nodes"):
            problems.append("the Ray cluster has no alive node")
    return problems


def _jobs_alive(job_ids: list[int], max_age_seconds: float) -> bool:
    """Whether a job the loop runs is still running and reporting (a long training is not a hang)."""
    if not job_ids:
        return False
    from datetime import timedelta

    from django.utils import timezone

    from annotation.models import Job, JobStatus

    cutoff = timezone.now() - timedelta(seconds=max_age_seconds)
    return Job.objects.filter(pk__in=job_ids, status=JobStatus.RUNNING, heartbeat_at__gte=cutoff).exists()
