"""Write checked files into storage and the database: files first, then one transaction; undo both on failure."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from annotation.ingest.deid import PatientKey
from annotation.models import Patient, PatientIdentity, PolarMap, Project, Series, Study


@dataclass(frozen=True)
class StoragePaths:
    """Where one stored instance's files go, relative to MEDIA_ROOT (a fresh token per import attempt)."""

    token: str
    project_id: int

    @property
    def dicom(self) -> str:
        return f"dicom/{self.project_id}/{self.token}.dcm"

    @property
    def frames(self) -> str:
        return f"frames/{self.project_id}/{self.token}"

    def polar(self, name: str) -> str:
        """A polar map's PNG: named by phase (PNG manifests) or by frame index (DICOM)."""
        return f"polar/{self.project_id}/{self.token}-{name}.png"


def media_path(relative: str) -> Path:
    """Return the absolute path of a stored file."""
    return Path(settings.MEDIA_ROOT) / relative


@contextmanager
def undo_files_on_error(project: Project) -> Iterator[StoragePaths]:
    """Yield fresh storage paths; remove whatever was written under them if the block fails."""
    paths = StoragePaths(token=uuid.uuid4().hex, project_id=project.pk)
    try:
        yield paths
    except BaseException:
        for relative in (paths.dicom, *(paths.polar(name) for name in ("rest", "stress", "0", "1"))):
            media_path(relative).unlink(missing_ok=True)
        shutil.rmtree(media_path(paths.frames), ignore_errors=True)
        raise


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_of_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def patient_for(key: PatientKey, *, lock: bool = False) -> Patient:
    """Return the pseudonymous patient for an identity, creating it (and its lead-only identity row) once.

    Must run inside a transaction; with lock=True the patient row is locked (SELECT … FOR UPDATE) so that
    concurrent imports pairing this patient's polar maps serialise.
    """
    secret = settings.PSEUDONYM_KEY
    identity_hash = key.identity_hash(secret)
    patient, created = Patient.objects.get_or_create(
        identity_hash=identity_hash, defaults={"pseudonym": key.pseudonym(secret)}
    )
    if created:
        PatientIdentity.objects.create(
            patient=patient,
            original_patient_id=key.patient_id[:128],
            original_name=key.name[:256],
            original_birth_date=key.birth_date[:16],
            issuer=key.issuer[:128],
        )
    if lock:
        patient = Patient.objects.select_for_update().get(pk=patient.pk)
    return patient


def study_for(project: Project, patient: Patient, *, uid: str, description: str, date: dt.date | None) -> Study:
    study, _ = Study.objects.get_or_create(
        project=project,
        study_instance_uid=uid,
        defaults={"patient": patient, "description": description[:256], "study_date": date},
    )
    return study


def series_for(study: Study, *, uid: str, modality: str, description: str, number: int | None) -> Series:
    series, _ = Series.objects.get_or_create(
        study=study,
        series_instance_uid=uid,
        defaults={"modality": modality, "description": description[:256], "series_number": number},
    )
    return series


def unpaired_counterpart(project: Project, patient: Patient, study: Study | None, phase: str) -> PolarMap | None:
    """Return the newest map of the other phase for this patient not yet in an exam (same study first)."""
    other = "stress" if phase == "rest" else "rest"
    candidates = PolarMap.objects.unpaired().filter(project=project, patient=patient, phase=other).order_by("-id")
    if study is not None:
        same_study = candidates.filter(study=study).first()
        if same_study is not None:
            return same_study
    return candidates.first()


# Where stored files live under MEDIA_ROOT: dicom/<project>/<token>.dcm (images and ECGs), frames/<project>/<token>/,
# polar/<project>/<token>-<name>.png (see StoragePaths).
STORED_TREES = ("dicom", "frames", "polar")


def orphaned_files(*, older_than: dt.timedelta) -> list[str]:
    """Return the stored files and frame folders (relative to MEDIA_ROOT) that no row refers to.

    A worker killed between writing a file's copies and committing its rows leaves them behind (the undo in
    `undo_files_on_error` never ran). Only entries last modified more than `older_than` ago count, so an import
    or a mask still on its way to its commit is never taken for one.
    """
    from annotation.models import Ecg, Instance, InterpolationModel

    referenced = set(PolarMap.objects.values_list("image_path", flat=True).iterator())
    referenced.update(Ecg.objects.values_list("file_path", flat=True).iterator())  # ECGs are stored under dicom/
    for file_path, frames_dir in Instance.objects.values_list("file_path", "frames_dir").iterator():
        referenced.update((file_path, frames_dir))
    root = Path(settings.MEDIA_ROOT)
    cutoff = dt.datetime.now().timestamp() - older_than.total_seconds()
    orphans = []
    for tree in STORED_TREES:
        for project_dir in sorted((root / tree).glob("*")) if (root / tree).is_dir() else []:
            for entry in sorted(project_dir.iterdir()):
                relative = entry.relative_to(root).as_posix()
                if relative not in referenced and _last_change(entry) < cutoff:
                    orphans.append(relative)
    # Arrays the learning workers derived from stored files (learning.tasks.base.TaskSpec.derived): a folder per
    # source file, named by the source's path.
    from learning.tasks.base import DERIVED_DIR

    derived = root / DERIVED_DIR
    for array in sorted(derived.rglob("*.npy")) if derived.is_dir() else []:
        source = array.parent.relative_to(derived).as_posix()
        if source not in referenced and array.stat().st_mtime < cutoff:
            orphans.append(array.relative_to(root).as_posix())
    # Synthetic in-between frames (annotation.services.interpolated_frames): a folder per model and frame cache.
    # Once either is gone (a model deleted, frames re-rendered after burned-in text was masked) they are never
    # served again, and those of unmasked frames still show the text, so they go.
    interpolated = derived / "interpolated"
    models = {str(pk) for pk in InterpolationModel.objects.values_list("pk", flat=True)}
    for frame in sorted(interpolated.rglob("*")) if interpolated.is_dir() else []:
        if not frame.is_file():
            continue
        model, _, frames_dir = frame.parent.relative_to(interpolated).as_posix().partition("/")
        if (model not in models or frames_dir not in referenced) and frame.stat().st_mtime < cutoff:
            orphans.append(frame.relative_to(root).as_posix())
    return orphans


def _last_change(entry: Path) -> float:
    """The newest modification time of a file, or of a folder and everything in it."""
    if entry.is_dir():
        return max([entry.stat().st_mtime, *(p.stat().st_mtime for p in entry.rglob("*"))])
    return entry.stat().st_mtime


def remove_stored(relative: str) -> None:
    """Delete a stored file or frame folder (relative to MEDIA_ROOT)."""
    path = media_path(relative)
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
