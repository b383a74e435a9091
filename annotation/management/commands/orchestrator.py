"""The orchestrator: the active-learning loop's long-running process (policies, queue upkeep, jobs on Ray)."""

from __future__ import annotations

import logging
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from annotation.services.exports import export_jobs_run_pending
from annotation.services.health import OrchestratorStatus
from annotation.services.imports import ImportWorker, import_housekeeping, import_jobs_run_pending
from annotation.services.orchestrator import JobSlots, orchestrator_tick

log = logging.getLogger("lumen.orchestrator")


class Command(BaseCommand):
    help = (
        "Run the active-learning loop: retrain by each project's policy, keep queues ranked, announce queue "
        "sizes, and run training and scoring jobs (local Ray by default; RAY_ADDRESS for a cluster); import jobs "
        "run beside them in a thread of their own."
    )

    def add_arguments(self, parser):
        parser.add_argument("--backend", choices=["ray", "inline"], default=settings.LUMEN_LEARNING_BACKEND)
        parser.add_argument(
            "--num-cpus", type=int, default=settings.LUMEN_RAY_NUM_CPUS, help="CPUs of the local Ray (default: all)"
        )
        parser.add_argument("--once", action="store_true", help="tick, run the jobs queued now, then exit")
        parser.add_argument("--idle-seconds", type=float, default=2.0, help="wait between ticks when idle")
        parser.add_argument("--poll-seconds", type=float, default=1.0, help="progress reporting interval")
        parser.add_argument(
            "--jobs",
            type=int,
            default=settings.LUMEN_ORCHESTRATOR_JOBS,
            help="jobs run at once, of different projects (default LUMEN_ORCHESTRATOR_JOBS)",
        )

    def handle(self, *args, backend, num_cpus, once, idle_seconds, poll_seconds, jobs, **options):
        from gpu_workers.executors import executor_from_settings

        stopping = {"now": False}

        def stop(signum, frame):
            stopping["now"] = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        executor = executor_from_settings(
            backend,
            address=settings.RAY_ADDRESS,
            num_cpus=num_cpus,
            scoring_workers=settings.LUMEN_SCORING_WORKERS,
            gpu_share=settings.LUMEN_SCORING_GPU_SHARE,
        )
        gpu = getattr(executor, "gpu", False)
        self.stdout.write(f"orchestrator ready: backend {executor.name}, GPU {'yes' if gpu else 'no'}", ending="\n")
        self.stdout.flush()
        status = OrchestratorStatus(backend=executor.name)
        slots = JobSlots(executor=executor, slots=jobs, poll_seconds=poll_seconds)
        imports = None if once else ImportWorker(idle_seconds=min(idle_seconds, 1.0))
        if imports is not None:
            imports.start()
        try:
            while not stopping["now"]:
                status.write(job_ids=slots.job_ids())
                import_housekeeping()
                tick = orchestrator_tick()
                for slug, reason in tick.trainings.items():
                    self.stdout.write(f"project {slug}: training queued ({reason})")
                for job in slots.reap():
                    self._ended(job)
                for job in slots.fill():
                    log.info("job %s: %s for project %s", job.pk, job.kind, job.project_id)
                if not slots.running:
                    if once:
                        import_jobs_run_pending()
                        export_jobs_run_pending()
                        break
                    time.sleep(idle_seconds)
                    continue
                # The jobs run on their own threads; the loop keeps ticking and starts more as slots free.
                time.sleep(min(idle_seconds, 1.0))
        finally:
            slots.wait()  # a stop lets the running jobs end (a killed process's jobs are run again when stale)
            for job in slots.reap():
                self._ended(job)
            if imports is not None:
                imports.stop(timeout=60)
            executor.close()

    def _ended(self, job) -> None:
        self.stdout.write(f"job {job.pk} ({job.kind}): {job.status}{': ' + job.error if job.error else ''}")
        self.stdout.flush()
