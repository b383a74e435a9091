"""Import studies from a DICOMweb server (PACS): the project's server, the import job, and the worker's run.

A lead sets the project's server (URL, user name, password; the password encrypted by annotation.credentials and
never returned), or the deployment sets one for every project from the environment (`LUMEN_DICOMWEB_URL`,
`…_USERNAME`, `…_PASSWORD`); the project's own comes first. Importing studies queues an import job at once. The
import worker lists the studies' instances (QIDO-RS), records the list in the job (a resumed job keeps its
positions), then imports the instances through `import_run`, retrieving each one (WADO-RS) when its turn comes:
the same checks, de-identification, duplicates and per-file outcomes as the files of an upload.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotation.credentials import credential_decrypt, credential_encrypt
from annotation.ingest.dicomweb import (
    RETRIEVE_SECONDS,
    DicomWebConnection,
    DicomWebError,
    DicomWebServer,
    InstanceRef,
    RetrievedInstance,
    url_normalized,
)
from annotation.ingest.results import ImportReport, Reason, Rejection
from annotation.ingest.sources import BadSource, SourceFile
from annotation.ingest.staging import STAGING_FOLDER, staging_remove
from annotation.models import ExternalServer, Job, JobKind, JobStatus, Project, ServerKind
from annotation.services.imports import ImportProgress, import_run
from annotation.services.jobs import job_event_send, job_project

logger = logging.getLogger(__name__)
SOURCE = "dicomweb"  # an import job's params["source"]: its files come from the project's DICOMweb server


class DicomWebNotConfigured(Exception):
    """The project has no DICOMweb server, and the environment sets none."""


@dataclass(frozen=True)
class DicomWebSetting:
    """What the lead is shown of the server a project imports from: never the password, only whether one is set."""

    source: str  # "project", "environment" or "none"
    url: str
    username: str
    has_password: bool
    updated_at: datetime | None


def _stored(project: Project) -> ExternalServer | None:
    return ExternalServer.objects.filter(project=project, kind=ServerKind.DICOMWEB).first()


def dicomweb_setting_of(project: Project) -> DicomWebSetting:
    """Return the server the project imports from as the lead may see it: its own, else the environment's."""
    stored = _stored(project)
    if stored is not None:
        return DicomWebSetting("project", stored.url, stored.username, bool(stored.secret), stored.updated_at)
    if settings.LUMEN_DICOMWEB_URL:
        return DicomWebSetting(
            "environment",
            settings.LUMEN_DICOMWEB_URL,
            settings.LUMEN_DICOMWEB_USERNAME,
            bool(settings.LUMEN_DICOMWEB_PASSWORD),
            None,
        )
    return DicomWebSetting("none", "", "", False, None)


def dicomweb_server_for(project: Project) -> DicomWebServer:
    """Return the server the project imports from, password decrypted (for the connection only).

    Raises DicomWebNotConfigured without one, CredentialUnreadable when its password was stored under another key.
    """
    stored = _stored(project)
    if stored is not None:
        return DicomWebServer(stored.url, stored.username, credential_decrypt(stored.secret))
    if not settings.LUMEN_DICOMWEB_URL:
        raise DicomWebNotConfigured("this project has no DICOMweb server: a lead sets one (URL, user name, password)")
    try:
        url = url_normalized(settings.LUMEN_DICOMWEB_URL)
    except ValueError as error:
        raise DicomWebNotConfigured(f"LUMEN_DICOMWEB_URL cannot be used: {error}") from None
    return DicomWebServer(url, settings.LUMEN_DICOMWEB_USERNAME, settings.LUMEN_DICOMWEB_PASSWORD)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


def dicomweb_server_set(
    *, project: Project, url: str, username: str, password: str | None, by: Any = None
) -> ExternalServer:
    """Set the project's DICOMweb server; `password` None keeps the stored one, "" removes it.

    A kept password is only ever sent where it was entered for: moving the server to another scheme, host or port
    without giving the password again removes it. Locks the project row so two leads' saves do not collide.
    """
    url = url_normalized(url)
    with transaction.atomic():
        Project.objects.lock(project.pk)
        server = _stored(project) or ExternalServer(project=project, kind=ServerKind.DICOMWEB, created_by=by)
        if password is not None:
            server.secret = credential_encrypt(password)
        elif server.pk is not None and _origin(server.url) != _origin(url):
            server.secret = ""
        server.url = url
        server.username = username
        server.save()
    return server


def dicomweb_server_remove(*, project: Project) -> bool:
    """Remove the project's own DICOMweb server (the environment's, if any, applies again); return whether one was."""
    with transaction.atomic():
        deleted, _ = ExternalServer.objects.filter(project=project, kind=ServerKind.DICOMWEB).delete()
    return bool(deleted)


def dicomweb_import_enqueue(*, project: Project, study_uids: list[str], user: Any = None) -> Job:
    """Queue an import job of these studies from the project's DICOMweb server; the import worker retrieves them.

    Nothing is asked of the server here: the request answers at once. Raises DicomWebNotConfigured without a server.
    """
    server = dicomweb_server_for(project)
    studies = list(dict.fromkeys(study_uids))  # each study once, in the lead's order
    staging = f"{STAGING_FOLDER}/dicomweb-{uuid.uuid4().hex}"  # created when the first instance is retrieved
    with transaction.atomic():
        job = Job.objects.create(
            project=project,
            kind=JobKind.IMPORT,
            status=JobStatus.QUEUED,
            created_by=user,
            params={"source": SOURCE, "server": server.url, "studies": studies, "staging": staging},
            detail=_listing(len(studies), 0),
        )
        job_event_send(job)
    return job


def _listing(studies: int, listed: int) -> dict[str, Any]:
    return {**ImportProgress(0, 0, 0, 0, 0).as_json(), "phase": "listing", "studies": studies, "listed": listed}


def dicomweb_job_run(*, job: Job) -> ImportReport:
    """Import a claimed DICOMweb import job: list its studies' instances once, then import them one by one.

    A study the server cannot list, and an instance it does not send whole, are rejected rows of the job's report;
    the job only fails as a whole when the project's server is gone or is no longer the one it was queued for.
    """
    project = job_project(job)
    server = dicomweb_server_for(project)
    if server.url != job.params.get("server"):
        raise DicomWebError("the project's DICOMweb server changed after this import was queued: import again")
    staging = Path(settings.MEDIA_ROOT) / job.params["staging"]
    with DicomWebConnection(server, read_seconds=RETRIEVE_SECONDS) as connection:
        entries = job.params.get("files")
        if not isinstance(entries, list):
            entries = dicomweb_job_list(job=job, connection=connection)
        sources = [_source(entry, connection, staging) for entry in entries]
        report = import_run(project=project, sources=sources, user=job.created_by, job=job)
    staging_remove(job.params["staging"])
    return report


def dicomweb_job_list(*, job: Job, connection: DicomWebConnection) -> list[dict[str, str]]:
    """List every instance of the job's studies (QIDO-RS) and record the list in the job, which keeps it from then on:
    a resumed job imports the same files at the same positions.

    The list takes the place of the study UIDs under `files`, where the import's housekeeping forgets names.
    """
    studies = list(job.params.get("studies", []))
    entries: list[dict[str, str]] = []
    for done, study in enumerate(studies, start=1):
        try:
            refs = connection.instances(study)
        except DicomWebError as error:
            entries.append({"name": study, "error": f"the study's instances could not be listed: {error}"})
        else:
            if not refs:
                entries.append({"name": study, "error": "the DICOMweb server holds no instance of this study"})
            entries.extend({"name": r.name, "study": r.study, "series": r.series, "sop": r.sop} for r in refs)
        with transaction.atomic():
            job.detail, job.heartbeat_at = _listing(len(studies), done), timezone.now()
            Job.objects.filter(pk=job.pk).update(detail=job.detail, heartbeat_at=job.heartbeat_at)
            job_event_send(job)
    with transaction.atomic():
        job.params = {**job.params, "studies": len(studies), "files": entries}
        job.save(update_fields=["params"])
    # Counts only: UIDs stay out of the logs.
    logger.info(
        "import job %s: %s file(s) listed in %s study(ies) on the DICOMweb server", job.pk, len(entries), len(studies)
    )
    return entries


def _source(entry: dict[str, str], connection: DicomWebConnection, staging: Path) -> SourceFile | BadSource:
    if "error" in entry:
        return BadSource(entry["name"], Rejection(Reason.NOT_RETRIEVED, entry["error"]))
    return RetrievedInstance(
        name=entry["name"],
        size=0,  # unknown until retrieved: the per-file limit is enforced while it streams in
        connection=connection,
        ref=InstanceRef(entry["study"], entry["series"], entry["sop"]),
        staging=staging,
        max_bytes=settings.LUMEN_MAX_FILE_BYTES,
    )
