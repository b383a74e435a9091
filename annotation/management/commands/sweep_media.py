"""List or remove stored files that no row refers to (the workers do this on their own every hour)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from annotation.ingest.store import orphaned_files
from annotation.services.imports import media_sweep_orphans


class Command(BaseCommand):
    help = (
        "Remove stored DICOM files, frame folders and polar maps that no row refers to: what an import worker killed "
        "mid-file leaves behind. Only entries older than the grace period count, so running imports are safe."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than-hours",
            type=float,
            default=settings.LUMEN_ORPHAN_GRACE_HOURS,
            help="grace period (default LUMEN_ORPHAN_GRACE_HOURS)",
        )
        parser.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")

    def handle(self, *args, older_than_hours: float, dry_run: bool, **options):
        if older_than_hours < 0:
            raise CommandError("--older-than-hours must be 0 or more")
        older_than = timedelta(hours=older_than_hours)
        found = orphaned_files(older_than=older_than) if dry_run else media_sweep_orphans(older_than=older_than)
        for relative in found:
            self.stdout.write(f"{'would remove' if dry_run else 'removed'}  {relative}")
        self.stdout.write(
            f"{len(found)} orphaned entr{'y' if len(found) == 1 else 'ies'}{' (dry run)' if dry_run else ''}"
        )
