"""Exit 0 when this deployment's dependencies answer, 1 otherwise: for container exec probes and operators."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from annotation.services.health import orchestrator_status_problems
from webapp.health import readiness


class Command(BaseCommand):
    help = (
        "Check the database and Redis (as /readyz does); with --orchestrator also the orchestrator's loop and its "
        "Ray cluster, from the status file the orchestrator writes (LUMEN_ORCHESTRATOR_STATUS_FILE)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--orchestrator", action="store_true", help="check the orchestrator's status file too")
        parser.add_argument(
            "--max-age", type=float, default=120.0, help="seconds since the orchestrator's last loop (default 120)"
        )

    def handle(self, *args, orchestrator: bool, max_age: float, **options):
        checks = readiness()
        problems = [f"{check.name}: {check.error}" for check in checks if not check.ok]
        if orchestrator:
            path = Path(settings.LUMEN_ORCHESTRATOR_STATUS_FILE)
            problems += orchestrator_status_problems(path=path, max_age_seconds=max_age)
        self.stdout.write(json.dumps({"ok": not problems, "problems": problems}))
        if problems:
            raise CommandError("; ".join(problems))
