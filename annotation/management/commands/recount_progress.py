"""Recount a project's progress counters (labellers per item, items wanting labels, per-annotator tallies)."""

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from annotation.services.tallies import progress_recount


class Command(BaseCommand):
    help = "Rebuild the progress counters of the projects SLUG... (all projects with --all) from the stored rows."

    def add_arguments(self, parser):
        parser.add_argument("slugs", nargs="*", help="project slugs")
        parser.add_argument("--all", action="store_true", help="every project")

    def handle(self, *args, slugs: list[str], all: bool, **options):  # noqa: A002 - the option's name
        if not slugs and not all:
            raise CommandError("name at least one project slug, or pass --all")
        projects = list(Project.objects.all() if all else Project.objects.filter(slug__in=slugs))
        missing = sorted(set(slugs) - {p.slug for p in projects})
        if missing:
            raise CommandError(f"no project with slug {', '.join(map(repr, missing))}")
        for project in projects:
            report = progress_recount(project=project)
            self.stdout.write(
                f"{project.slug}: {report['items_fixed']} item count(s) and {report['tallies_fixed']} annotator "
                f"tally(ies) corrected; {report['wanting_items']} item(s) want labels"
            )
