"""The lead's SPECT pairing list: set the phase of a polar map its file did not state, or discard a map.

A map with a phase is paired at once with the newest unpaired map of the other phase of the same patient (the
same study first), exactly as on import; the exam takes the clinical features the maps were stored with.
"""

from __future__ import annotations

import shutil

from django.contrib.auth.models import User
from django.db import transaction

from annotation.ingest.pipeline import pair_polar_map
from annotation.ingest.store import media_path
from annotation.models import Patient, PolarMap, PolarMapPhase
from annotation.services.errors import WorkspaceInputError


def _locked_unpaired(polar: PolarMap) -> PolarMap:
    """Lock the map's patient (pairing takes that lock), then re-read the map; refuse a map already paired."""
    Patient.objects.select_for_update().filter(pk=polar.patient_id).values_list("pk", flat=True).get()
    polar = PolarMap.objects.select_related("patient", "study", "project", "rest_exam", "stress_exam").get(pk=polar.pk)
    if polar.exam_item_id is not None:
        raise WorkspaceInputError(
            "phase", f"this map is already paired in item {polar.exam_item_id}; it can no longer change"
        )
    return polar


def polar_map_set_phase(*, polar: PolarMap, by: User, phase: str) -> int:
    """Set an unpaired map's phase and pair it if its counterpart is there; return the items created (0 or 1)."""
    if phase not in PolarMapPhase.values:
        raise WorkspaceInputError("phase", "must be rest or stress")
    with transaction.atomic():
        polar = _locked_unpaired(polar)
        polar.phase, polar.phase_set_by = phase, by
        polar.save(update_fields=["phase", "phase_set_by"])
        return pair_polar_map(polar.project, polar.patient, polar.study, polar)


def polar_map_discard(*, polar: PolarMap, by: User) -> None:
    """Delete an unpaired map that is not a polar map at all; its file goes with its last map."""
    with transaction.atomic():
        polar = _locked_unpaired(polar)
        instance = polar.instance
        files = [polar.image_path]
        polar.delete()
        if instance is not None and not instance.polar_maps.exists():
            files.append(instance.file_path)
            frames = instance.frames_dir
            instance.delete()
            transaction.on_commit(lambda: shutil.rmtree(media_path(frames), ignore_errors=True))

        def remove_files() -> None:
            for name in files:
                media_path(name).unlink(missing_ok=True)

        transaction.on_commit(remove_files)
