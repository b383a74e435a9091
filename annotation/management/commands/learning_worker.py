"""The learning worker: claims queued training and scoring jobs and runs them on Ray (or inline)."""

from __future__ import annotations

import logging
import signal
import time
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand

from annotation.services.jobs import job_claim, jobs_recover_stale
from annotation.services.learning import job_run

log = logging.getLogger("lumen.worker")


class Command(BaseCommand):
    help = "Run queued training and scoring jobs (local Ray by default; RAY_ADDRESS for a cluster)."

    def add_arguments(self, parser):
        parser.add_argument("--backend", choices=["ray", "inline"], default=settings.LUMEN_LEARNING_BACKEND)
        parser.add_argument("--num-cpus", type=int, default=settings.LUMEN_RAY_NUM_CPUS,
                            help="CPUs of the local Ray (default: all)")
        parser.add_argument("--once", action="store_true", help="run the jobs queued now, then exit")
        parser.add_argument("--idle-seconds", type=float, default=2.0, help="wait between looks at the queue")
        parser.add_argument("--poll-seconds", type=float, default=1.0, help="progress reporting interval")

    def handle(self, *args, backend: str, num_cpus: int | None, once: bool, idle_seconds: float,
               poll_seconds: float, **options):
        from gpu_workers.executors import executor_from_settings

        stopping = {"now": False}

        def stop(signum, frame):
            stopping["now"] = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        executor = executor_from_settings(backend, address=settings.RAY_ADDRESS, num_cpus=num_cpus)
        gpu = getattr(executor, "gpu", False)
        self.stdout.write(f"learning worker ready: backend {executor.name}, GPU {'yes' if gpu else 'no'}")
        stale_after = timedelta(seconds=settings.LUMEN_JOB_STALE_SECONDS)
        try:
            while not stopping["now"]:
                jobs_recover_stale(stale_after=stale_after, max_attempts=settings.LUMEN_JOB_MAX_ATTEMPTS)
                job = job_claim()
                if job is None:
                    if once:
                        break
                    time.sleep(idle_seconds)
                    continue
                log.info("job %s: %s for project %s", job.pk, job.kind, job.project_id)
                job_run(job=job, executor=executor, poll_seconds=poll_seconds)
                job.refresh_from_db()
                self.stdout.write(f"job {job.pk} ({job.kind}): {job.status}{': ' + job.error if job.error else ''}")
        finally:
            executor.close()
