"""Import an angiography lesion-report CSV into a project; print a summary, or every row error (exit 1)."""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from annotation.services.lesions import REPORT_MAX_BYTES, ReportImportError, reports_import


class Command(BaseCommand):
    help = (
        "Import lesion reports from FILE.csv into the project SLUG (columns study_instance_uid, segment, "
        "stenosis_percent, dominance, note). All rows or none: a bad row is listed and nothing is imported."
    )

    def add_arguments(self, parser):
        parser.add_argument("project", help="project slug")
        parser.add_argument("path", type=Path, help="the report CSV")
        parser.add_argument("--user", help="username recorded as the importer")

    def handle(self, *args, project: str, path: Path, user: str | None, **options):
        if not path.is_file():
            raise CommandError(f"{path} is not a file")
        if path.stat().st_size > REPORT_MAX_BYTES:
            raise CommandError(f"{path} has {path.stat().st_size:,} bytes; a report file may have {REPORT_MAX_BYTES:,}")
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"no project with slug {project!r}")
        importer = None
        if user:
            importer = get_user_model().objects.filter(username=user).first()
            if importer is None:
                raise CommandError(f"no user named {user!r}")
        try:
            result = reports_import(project=target, user=importer, data=path.read_bytes(), source_name=path.name)
        except ReportImportError as error:
            for problem in error.errors:
                self.stderr.write(self.style.ERROR(str(problem)))
            raise CommandError(f"{path.name}: {len(error.errors)} problem(s); nothing imported") from None
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.source_name}: {result.exams} exam(s) reported, {result.lesions} lesion(s), "
                f"{result.exams_without_lesions} without lesions, {result.superseded} earlier report(s) superseded"
            )
        )
