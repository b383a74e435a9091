"""Synthetic in-between frames of a cine run for the player's smooth 2× playback (issue 18, seed 001).

The frame half-way between frames n and n + 1 is computed by the project's frame-interpolation network from the
two cached 8-bit frames the viewer shows (so the synthetic frame matches what is on screen), encoded like them
and kept on disk under `derived/interpolated/<model>/<frames_dir>/`: the frame cache's folder changes whenever its
frames do (a burned-in mask renders a new one), so a stale in-between frame is never served. Each network is
loaded once per process (`interpolation_model_load`, cached by model id and weights file time), not once per frame.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from django.urls import reverse
from PIL import Image

from annotation.ingest import render
from annotation.ingest.store import media_path
from annotation.models import Instance, InterpolationModel, Item
from annotation.services.interpolation import interpolation_model_latest, interpolation_model_load
from learning.models.device import pick_device
from learning.models.interpolation import FrameInterpolator
from learning.tasks.base import DERIVED_DIR

INTERPOLATED_DIR = f"{DERIVED_DIR}/interpolated"
NETWORKS_KEPT = 4  # loaded networks per process: a project's newest and the one before, for a few projects


class InterpolationUnavailable(LookupError):
    """No in-between frame can be served; the message says why in words an annotator understands."""


# ------------------------------------------------------------------------------------------------ reads
def interpolation_model_for_item(*, item_id: int, model_id: int) -> InterpolationModel:
    """Return model `model_id` if it belongs to the item's project; raise InterpolationUnavailable otherwise."""
    model = InterpolationModel.objects.filter(pk=model_id, project__items__pk=item_id).first()
    if model is not None:
        return model
    if not InterpolationModel.objects.filter(project__items__pk=item_id).exists():
        raise InterpolationUnavailable("This project has no frame-interpolation model yet.")
    raise InterpolationUnavailable(f"This project has no frame-interpolation model {model_id}.")


def interpolation_media(item: Item) -> dict | None:
    """What the cine player needs for smooth playback of the item, or None when its project has no model.

    The newest model's id is read from the item's query where it was annotated (`latest_interpolation_model`,
    selectors.with_workspace_state), else looked up."""
    if hasattr(item, "latest_interpolation_model"):
        model_id = item.latest_interpolation_model
    else:
        model = interpolation_model_latest(item.project)
        model_id = model.pk if model is not None else None
    if model_id is None:
        return None
    url = reverse("api:item-frame-interpolated", args=[item.pk, 0, model_id])
    return {
        "model": model_id,
        # frame {n} is half-way between frames n and n + 1
        "frame_url_template": url.replace("/frames/0/", "/frames/{n}/", 1),
        "frames": max(item.dicom.number_of_frames - 1, 0),
    }


# ------------------------------------------------------------------------------------------------ the network
def interpolation_network(row: InterpolationModel) -> FrameInterpolator:
    """Return the row's network in eval mode on this process's device, loaded once per weights file version."""
    try:
        version = media_path(row.weights_path).stat().st_mtime_ns
    except (FileNotFoundError, NotADirectoryError):
        raise InterpolationUnavailable(f"The weights of frame-interpolation model {row.pk} are missing.") from None
    return _network(row, version)


@lru_cache(maxsize=NETWORKS_KEPT)
def _network(row: InterpolationModel, version: int) -> FrameInterpolator:
    # Keyed by the row (its id) and `version`, the file's time: weights written again are loaded again.
    return interpolation_model_load(row, str(pick_device()))


# ------------------------------------------------------------------------------------------------ frames
def interpolated_frame_path(*, instance: Instance, model: InterpolationModel, n: int) -> Path:
    """Where the frame half-way between frames n and n + 1 of `instance` by `model` is kept."""
    directory = media_path(f"{INTERPOLATED_DIR}/{model.pk}/{instance.frames_dir}")
    return render.frame_path(directory, n, instance.frame_format)


def interpolated_frame(*, instance: Instance, model: InterpolationModel, n: int) -> bytes:
    """Return the encoded frame half-way between frames n and n + 1 (computed once, then read from disk)."""
    last = instance.number_of_frames - 1
    if not 0 <= n < last:
        raise InterpolationUnavailable(
            f"There is no frame between {n} and {n + 1}: the run's frames are 0…{last}, "
            f"so the in-between frames are 0…{last - 1}."
        )
    target = interpolated_frame_path(instance=instance, model=model, n=n)
    try:
        return target.read_bytes()
    except FileNotFoundError:
        pass
    frames = media_path(instance.frames_dir)
    try:
        previous, following = (_decoded(render.frame_path(frames, i, instance.frame_format)) for i in (n, n + 1))
    except FileNotFoundError:
        raise InterpolationUnavailable("The rendered frames are missing from the frame cache.") from None
    middle = _interpolate(interpolation_network(model), previous, following)
    data = render.encode_image(middle, instance.frame_format, render.frame_quality(instance.frame_format))
    _write_atomically(target, data)
    return data


GREY_TOLERANCE = 2  # WebP stores grey as colour: its decoded channels differ by a rounding step


def _decoded(path: Path) -> np.ndarray:
    """A cached frame as uint8 (H, W) for grey, (H, W, 3) for colour."""
    with Image.open(path) as image:
        pixels = np.array(image if image.mode == "L" else image.convert("RGB"))
    if pixels.ndim == 3 and np.abs(pixels.astype(np.int16) - pixels[..., :1]).max() <= GREY_TOLERANCE:
        return pixels[..., 0].copy()  # one channel through the network, not three of the same
    return pixels


def _interpolate(network: FrameInterpolator, previous: np.ndarray, following: np.ndarray) -> np.ndarray:
    """The network's middle frame of two uint8 frames, each colour channel as one grey frame of the batch."""
    device = next(network.parameters()).device

    def batch(frame: np.ndarray) -> torch.Tensor:
        channels = frame[None] if frame.ndim == 2 else np.moveaxis(frame, -1, 0)  # (C, H, W)
        return torch.from_numpy(np.ascontiguousarray(channels)).to(device)[:, None].float() / 255.0

    with torch.inference_mode():
        middle = network(batch(previous), batch(following))[:, 0]  # (C, H, W) in [0, 1]
    pixels = (middle * 255.0).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    return pixels[0] if previous.ndim == 2 else np.moveaxis(pixels, 0, -1)


def _write_atomically(target: Path, data: bytes) -> None:
    """Write next to the target and rename, so a concurrent reader sees the whole file or none; a media root this
    process cannot write to only costs the computation next time."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        os.replace(partial, target)
    except OSError:
        partial.unlink(missing_ok=True)
