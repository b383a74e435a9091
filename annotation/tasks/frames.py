"""Pieces the tasks share for turning stored files into items."""

from __future__ import annotations

from django.urls import reverse

from annotation.ingest.results import Reason, Rejection
from annotation.models import Item


def cine_frames_required(ds, frames: int, what: str) -> None:
    """Refuse a single-frame file where the task needs a sequence (a cine run, a pullback)."""
    if frames >= 2:
        return
    stated = ds.get("NumberOfFrames")
    said = "absent" if stated in (None, "") else f"{stated}"
    raise Rejection(Reason.NOT_MULTIFRAME, f"not a {what}: NumberOfFrames is {said}; a {what} has at least 2 frames")


def held_fields(held: bool) -> dict[str, int]:
    """Return the fields an item is created with when its file waits for a lead (burned-in text)."""
    from annotation.services.slots import HELD  # annotation.services imports the ingest that imports the tasks

    return dict(HELD) if held else {}


def enqueue(project, item_ids: list[int]) -> None:
    """Put new items into the project's queue inside the import's transaction."""
    from annotation.services.queue import queue_add_items  # annotation.services imports the ingest (see above)

    queue_add_items(project=project, item_ids=item_ids)


def frame_media(item: Item) -> dict:
    """Return the frame URLs and sizes of an item shown from a stored multi-frame file (cine run, pullback)."""
    instance = item.dicom
    frame_url = reverse("api:item-frame", args=[item.pk, 0])
    return {
        "frame_url_template": frame_url[: -len("0/")] + "{n}/",
        "frames_pack_url": reverse("api:item-frame-pack", args=[item.pk]),
        "frames": instance.number_of_frames,
        "rows": instance.rows,
        "columns": instance.columns,
        "frame_format": instance.frame_format,
        "frame_rate": instance.frame_rate,
        "frame_time_ms": instance.frame_time_ms,
    }
