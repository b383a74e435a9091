"""Import a folder (or file, or zip) of DICOM — or SPECT PNGs with a manifest.csv — into a project."""

from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotation.ingest.results import Outcome
from annotation.ingest.sources import ArchiveLimits, sources_from_path
from annotation.models import Project
from annotation.services import import_run


class ProgressBar:
    """One line on a terminal: a bar, files done of the total and the counts so far."""

    width = 30

    def __init__(self, stream) -> None:
        self.stream = stream

    def draw(self, state) -> None:
        filled = round(self.width * state.done / max(state.total, 1))
        line = (
            f"[{'#' * filled}{'.' * (self.width - filled)}] {state.done}/{state.total} files · "
            f"{state.stored} stored · {state.duplicates} duplicate · {state.rejected} rejected"
        )
        self.stream.write("\r" + line, ending="")
        self.stream.flush()

    def clear(self) -> None:
        self.stream.write("\r\033[K", ending="")


class Command(BaseCommand):
    help = "Import DICOM files from PATH into the project SLUG; prints each file's outcome."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--user", help="username recorded as the importer")
        parser.add_argument("--quiet-stored", action="store_true", help="list only duplicates and rejections")

    def _styled(self, result) -> str:
        style = (
            self.style.SUCCESS
            if result.outcome == Outcome.STORED
            else (self.style.WARNING if result.outcome == Outcome.DUPLICATE else self.style.ERROR)
        )
        return style(f"{result.outcome:<9} {result.name}: {result.message}")

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
        sources = sources_from_path(path, limits=ArchiveLimits.from_settings())
        bar = ProgressBar(self.stderr) if self.stderr.isatty() else None

        def progress(state, result):
            if result is not None and not (quiet_stored and result.outcome == Outcome.STORED):
                if bar is not None:
                    bar.clear()
                self.stdout.write(f"[{state.done}/{state.total}] " + self._styled(result))
                self.stdout.flush()
            if bar is not None:
                bar.draw(state)

        report = import_run(project=target, user=importer, sources=sources, progress=progress)
        if bar is not None:
            bar.clear()
        summary = report.summary()
        self.stdout.write(
            f"job {report.job_id}: {summary['stored']} stored, {summary['duplicates']} duplicate, "
            f"{summary['rejected']} rejected, {summary['items_created']} item(s) created"
        )
        if summary["stored"] == 0 and summary["rejected"] > 0:
            raise CommandError("nothing could be stored")
