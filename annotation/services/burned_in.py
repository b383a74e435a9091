"""A lead's decision on a file with burned-in text: exclude it, mask the text in its pixels, or release it.

Files whose header says BurnedInAnnotation YES, or in whose pixels the opt-in check found words, are imported
with their items held out of labelling (they want no labels) until a lead decides:

- **exclude**: the items stay out of labelling (labels they already have are kept);
- **mask**: the regions (the check's boxes unless the lead gives others) are painted black in every frame of the
  stored file and of the frame cache, written as new files (the old ones go once the change is committed), and
  the items join the queue;
- **release**: nothing identifying; the items join the queue as they are.
"""

from __future__ import annotations

import shutil
import uuid

import pydicom
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from annotation.ingest import render
from annotation.ingest.burned_in import check_regions, mask_pixels
from annotation.ingest.pipeline import render_frame_cache
from annotation.ingest.store import StoragePaths, media_path
from annotation.models import BurnedInReview, Instance, Item, ItemKind
from annotation.services.errors import WorkspaceInputError
from annotation.services.queue import queue_hold_items, queue_release_items

DECISIONS = ("exclude", "mask", "release")


def burned_in_decide(*, item: Item, by: User, decision: str, regions: list[list[int]] | None = None) -> Instance:
    """Apply a lead's decision to the file the item shows (every item of that file); return the file's row."""
    if item.instance_id is None:
        raise WorkspaceInputError("decision", "this item has no DICOM file (SPECT maps from PNG have no header)")
    if decision not in DECISIONS:
        raise WorkspaceInputError("decision", f"must be one of {', '.join(DECISIONS)}")
    instance = Instance.objects.get(pk=item.instance_id)
    if decision == "mask":
        return _mask(item, instance, regions, by)
    with transaction.atomic():
        instance = Instance.objects.select_for_update().get(pk=instance.pk)
        ids = list(Item.objects.filter(instance=instance).values_list("pk", flat=True))
        if decision == "exclude":
            queue_hold_items(project=item.project, item_ids=ids)
            instance.burned_in_review = BurnedInReview.EXCLUDED
        else:
            queue_release_items(project=item.project, item_ids=ids)
            instance.burned_in_review = BurnedInReview.RELEASED
        instance.burned_in_decided_by, instance.burned_in_decided_at = by, timezone.now()
        instance.save(update_fields=["burned_in_review", "burned_in_decided_by", "burned_in_decided_at"])
    return instance


def _mask(item: Item, instance: Instance, regions: list[list[int]] | None, by: User) -> Instance:
    chosen = regions if regions is not None else (instance.text_regions or [])
    try:
        chosen = check_regions(chosen, instance.rows, instance.columns)
    except ValueError as error:
        hint = "" if regions is not None else " (the text check found none: give the regions yourself)"
        raise WorkspaceInputError("regions", f"{error}{hint}") from None
    paths = StoragePaths(token=uuid.uuid4().hex, project_id=instance.project_id)
    old_file, old_frames = instance.file_path, instance.frames_dir
    try:
        ds = pydicom.dcmread(media_path(old_file))
        mask_pixels(ds, chosen)
        target = media_path(paths.dicom)
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target, enforce_file_format=True)
        lmode = media_path(paths.frames) / render.LMODE_NAME if item.kind == ItemKind.OCT_FRAME else None
        render_frame_cache(target, ds, media_path(paths.frames), instance.frame_format, lmode)
        with transaction.atomic():
            locked = Instance.objects.select_for_update().get(pk=instance.pk)
            if locked.file_path != old_file:
                raise WorkspaceInputError("decision", "another lead changed this file meanwhile; reload and retry")
            locked.file_path, locked.frames_dir = paths.dicom, paths.frames
            locked.file_size = target.stat().st_size
            locked.transfer_syntax_uid = str(ds.file_meta.TransferSyntaxUID)
            locked.photometric_interpretation = str(ds.PhotometricInterpretation)
            locked.burned_in_review = BurnedInReview.MASKED
            locked.burned_in_decided_by, locked.burned_in_decided_at = by, timezone.now()
            locked.save()
            ids = list(Item.objects.filter(instance=locked).values_list("pk", flat=True))
            queue_release_items(project=item.project, item_ids=ids)
            transaction.on_commit(lambda: _remove(old_file, old_frames))
    except BaseException:
        _remove(paths.dicom, paths.frames)
        raise
    return locked


def _remove(dicom: str, frames: str) -> None:
    media_path(dicom).unlink(missing_ok=True)
    shutil.rmtree(media_path(frames), ignore_errors=True)
