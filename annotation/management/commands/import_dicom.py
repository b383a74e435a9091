"""Import a folder (or file, or zip) of DICOM — or SPECT PNGs with a manifest.csv — into a project."""

from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotation.ingest.results import Outcome
from annotation.ingest.sources import sources_from_path
from annotation.models import Project
from annotation.services import import_run


class Command(BaseCommand):
    help = "Import DICOM files from PATH into the project SLUG; prints each file's outcome."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--user", help="username recorded as the importer")
        parser.add_argument("--quiet-stored", action="store_true", help="list only duplicates and rejections")

    def handle(self, *args, path: Path, project: str, user: str | None, quiet_stored: bool, **options):
        if not path.exists():
            raise CommandError(f"{path} does not exist")
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"no project with slug {project!r}")
        importer = None
        if user:
            importer = get_user_model().objects.filter(username=user).first()
            if importer is None:
                raise CommandError(f"no user named {user!r}")
        report = import_run(
            project=target, user=importer, sources=sources_from_path(path, max_members=settings.LUMEN_MAX_ZIP_MEMBERS)
        )
        for result in report.files:
            if quiet_stored and result.outcome == Outcome.STORED:
                continue
            style = (
                self.style.SUCCESS
                if result.outcome == Outcome.STORED
                else (self.style.WARNING if result.outcome == Outcome.DUPLICATE else self.style.ERROR)
            )
            self.stdout.write(style(f"{result.outcome:<9} {result.name}: {result.message}"))
        summary = report.summary()
        self.stdout.write(
            f"job {report.job_id}: {summary['stored']} stored, {summary['duplicates']} duplicate, "
            f"{summary['rejected']} rejected, {summary['items_created']} item(s) created"
        )
        if summary["stored"] == 0 and summary["rejected"] > 0:
            raise CommandError("nothing could be stored")
