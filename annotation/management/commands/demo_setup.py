"""Create the demo accounts and three demo projects filled with generated studies (idempotent)."""

import os
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand
from django.db import transaction

from annotation.ingest.sources import ArchiveLimits, sources_from_path
from annotation.models import Project, Role, TaskType
from annotation.services import import_run, membership_set, project_create


def _xa(folder: Path, scale: int) -> None:
    from learning.cohorts import generate_xa_cohort

    generate_xa_cohort(
        folder, n_patients=10 * scale, runs_per_patient=3, frames=(24, 40), size=256, seed=1, neither_rate=0.1
    )


def _oct(folder: Path, scale: int) -> None:
    from learning.cohorts import generate_oct_cohort

    # Four patients: one is held out for testing, so a model can be judged before it is promoted.
    generate_oct_cohort(folder, n_pullbacks=4 * scale, frames=30, size=256, seed=2)


def _spect(folder: Path, scale: int) -> None:
    from learning.cohorts import generate_spect_cohort

    generate_spect_cohort(folder, n_patients=12 * scale, size=290, seed=3, fmt="png")


# (slug, name, task type, the generator of its data)
DEMO_PROJECTS = (
    ("demo-vessel", "Demo · vessel type (angiography)", TaskType.VESSEL_TYPE, _xa),
    ("demo-oct", "Demo · OCT calcium", TaskType.OCT_CALCIUM, _oct),
    ("demo-spect", "Demo · SPECT territories", TaskType.SPECT_TERRITORY, _spect),
)


class Command(BaseCommand):
    help = "Create demo users (lead, annotator1, annotator2) and demo projects with generated data."

    def add_arguments(self, parser):
        parser.add_argument("--data-dir", type=Path, default=Path(settings.BASE_DIR) / "var" / "demo-data")
        parser.add_argument("--password", default=os.environ.get("LUMEN_DEMO_PASSWORD", "lumen-demo"))
        parser.add_argument("--scale", type=int, default=1, help="multiply the amount of generated data")

    def handle(self, *args, data_dir: Path, password: str, scale: int, **options):
        users = self._users(password)
        for slug, name, task, generate in DEMO_PROJECTS:
            project = Project.objects.filter(slug=slug).first()
            if project is None:
                project = project_create(
                    slug=slug,
                    name=name,
                    task_type=task,
                    creator=users["lead"],
                    description="Generated demo data with known ground truth.",
                    # Small projects: retrain often, so the loop is visible within minutes of labelling; hold
                    # out a larger share of patients, and judge a model on fewer test labels than the default 10,
                    # so that a first model can be promoted at all on a few dozen items.
                    settings={"retrain_every_n_labels": 6, "test_fraction": 0.3, "promotion_min_test_items": 5},
                )
            for username in ("annotator1", "annotator2"):
                membership_set(project=project, user=users[username], role=Role.ANNOTATOR)
            folder = data_dir / task
            if not folder.exists():
                folder.mkdir(parents=True)
                generate(folder, scale)
            report = import_run(
                project=project,
                user=users["lead"],
                sources=sources_from_path(folder, limits=ArchiveLimits.from_settings()),
            )
            s = report.summary()
            self.stdout.write(
                f"{slug}: {s['stored']} stored, {s['duplicates']} already there, "
                f"{s['rejected']} rejected, {project.items.count()} items"
            )
        self.stdout.write(self.style.SUCCESS(f"Demo accounts: lead, annotator1, annotator2 — password: {password}"))

    @transaction.atomic
    def _users(self, password: str) -> dict:
        user_model = get_user_model()
        users = {}
        for username in ("lead", "annotator1", "annotator2"):
            user, _ = user_model.objects.get_or_create(username=username)
            user.set_password(password)
            user.save()
            users[username] = user
        users["lead"].user_permissions.add(
            Permission.objects.get(codename="add_project", content_type__app_label="annotation")
        )
        return users
