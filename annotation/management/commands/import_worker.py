"""Run queued import and dataset export jobs (the orchestrator runs them too; this is for import-only workers)."""

from __future__ import annotations

import signal
import time

from django.core.management.base import BaseCommand

from annotation.services.exports import export_jobs_run_pending
from annotation.services.imports import import_housekeeping, import_jobs_run_pending


class Command(BaseCommand):
    help = (
        "Run queued import jobs until stopped: uploads are staged on disk by the web server and imported here. "
        "Jobs of a worker that stopped reporting are resumed from their last recorded file. Dataset exports run "
        "here too."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="run the import and export jobs queued now, then exit")
        parser.add_argument("--idle-seconds", type=float, default=1.0, help="wait between polls when idle")

    def handle(self, *args, once: bool, idle_seconds: float, **options):
        stopping = {"now": False}

        def stop(signum, frame):
            stopping["now"] = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        while not stopping["now"]:
            import_housekeeping()
            ran = import_jobs_run_pending() + export_jobs_run_pending()
            if ran:
                self.stdout.write(f"{ran} import or export job(s) run")
                self.stdout.flush()
            if once:
                break
            if not ran:
                time.sleep(idle_seconds)
