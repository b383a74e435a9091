"""Import a batch of files into a project, recording the batch and every file's outcome as a job."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from annotation.ingest.pipeline import ingest_dicom, limits_from_settings
from annotation.ingest.results import FileResult, ImportReport, Outcome, Reason
from annotation.ingest.sources import BadSource, SourceFile
from annotation.ingest.spect_manifest import import_manifest, is_manifest, is_png
from annotation.models import Job, JobKind, JobStatus, Project, TaskType
from annotation.project_settings import parse_settings

logger = logging.getLogger(__name__)


def import_run(
    *, project: Project, sources: Iterable[SourceFile | BadSource], user: AbstractBaseUser | None = None
) -> ImportReport:
    """Import every source; each file is stored whole or rejected with its reason, the rest of the batch goes on."""
    config = parse_settings(project.task_type, project.settings)
    limits = limits_from_settings()
    sources = list(sources)
    job = Job.objects.create(
        project=project,
        kind=JobKind.IMPORT,
        status=JobStatus.RUNNING,
        created_by=user,
        started_at=timezone.now(),
        params={"files": len(sources)},
    )
    report = ImportReport(job_id=job.pk)
    manifests = [s for s in sources if isinstance(s, SourceFile) and is_manifest(s.name)]
    takes_pngs = project.task_type == TaskType.SPECT_TERRITORY and manifests
    pngs = {s.name: s for s in sources if isinstance(s, SourceFile) and is_png(s.name)} if takes_pngs else {}
    dicoms = [s for s in sources if s not in manifests and not (isinstance(s, SourceFile) and s.name in pngs)]
    total = max(1, len(sources))
    for index, source in enumerate(dicoms, start=1):
        report.files.append(_one(project, config, source, limits))
        if index % 10 == 0:
            Job.objects.filter(pk=job.pk).update(progress=index / total, heartbeat_at=timezone.now())
    used: set[str] = set()
    for manifest in manifests:
        if project.task_type != TaskType.SPECT_TERRITORY:
            report.files.append(
                FileResult(
                    manifest.name,
                    Outcome.REJECTED,
                    str(Reason.BAD_MANIFEST),
                    "CSV manifests are only for spect_territory projects",
                )
            )
            continue
        report.files.extend(import_manifest(project, manifest, pngs, used))
    for name in sorted(set(pngs) - used):
        report.files.append(
            FileResult(
                name, Outcome.REJECTED, str(Reason.NOT_IN_MANIFEST), "PNG not listed in any manifest row of this upload"
            )
        )
    nothing_stored = report.count(Outcome.STORED) == 0 and report.count(Outcome.REJECTED) > 0
    Job.objects.filter(pk=job.pk).update(
        status=JobStatus.FAILED if nothing_stored else JobStatus.SUCCEEDED,
        progress=1.0,
        finished_at=timezone.now(),
        result=report.as_json(),
        error="no file in the batch could be stored" if nothing_stored else "",
    )
    # Counts only: file names may carry patient identifiers.
    logger.info("import job %s into project %s: %s", job.pk, project.pk, report.summary())
    return report


def _one(project: Project, config, source: SourceFile | BadSource, limits) -> FileResult:
    if isinstance(source, BadSource):
        return FileResult(source.name, Outcome.REJECTED, str(source.rejection.reason), source.rejection.message)
    return ingest_dicom(project, config, source, limits)
