"""Serialise cohort ground truth to JSON (OCT masks go to .npz files beside it) and back.

Layout of the JSON document::

    {"format": "lumen-cohort-truth", "version": 1, "kind": "xa_run" | "oct_pullback" |
     "spect_patient" | "mixed", "count": N, "items": [{"kind": ..., ...fields...}, ...]}

Every path in an item is relative to the folder that holds the JSON file. OCT masks are
stored per pullback as ``<json stem>.masks/<sop_instance_uid>.npz`` (one bool array named
``masks`` of shape (frames, size, size), zlib-compressed); the item keeps that relative
path in ``masks`` plus ``calcium_frames`` (frame indices whose mask is non-empty).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from .ivoct import OctPullbackTruth
from .spect import SpectPatientTruth
from .xa import XaRunTruth

Truth = XaRunTruth | OctPullbackTruth | SpectPatientTruth
FORMAT = "lumen-cohort-truth"
VERSION = 1
_KINDS: dict[type, str] = {
    XaRunTruth: "xa_run",
    OctPullbackTruth: "oct_pullback",
    SpectPatientTruth: "spect_patient",
}
_CLASSES = {kind: cls for cls, kind in _KINDS.items()}


def _rel(path: Path, root: Path) -> str:
    """Return path relative to root, with forward slashes."""
    return Path(os.path.relpath(Path(path).resolve(), root)).as_posix()


def _item(truth: Truth, root: Path, mask_dir: Path) -> dict[str, Any]:
    """Return the JSON-ready dict of one truth record, writing its masks if it has any."""
    kind = _KINDS.get(type(truth))
    if kind is None:
        raise TypeError(f"not a cohort truth record: {type(truth).__name__}")
    out: dict[str, Any] = {"kind": kind}
    for f in fields(truth):
        value = getattr(truth, f.name)
        if f.name == "masks":
            mask_dir.mkdir(parents=True, exist_ok=True)
            mask_path = mask_dir / f"{truth.sop_instance_uid}.npz"  # type: ignore[union-attr]
            np.savez_compressed(mask_path, masks=np.asarray(value, dtype=bool))
            out["masks"] = _rel(mask_path, root)
            out["calcium_frames"] = [int(k) for k in np.flatnonzero(value.any(axis=(1, 2)))]
        elif isinstance(value, Path):
            out[f.name] = _rel(value, root)
        elif isinstance(value, np.ndarray):
            out[f.name] = np.round(value, 3).tolist()
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


def write_truth_json(truths: Sequence[Truth], path: Path) -> Path:
    """Write truths to a JSON file at path (masks beside it); return path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = path.parent.resolve()
    mask_dir = root / f"{path.stem}.masks"
    items = [_item(t, root, mask_dir) for t in truths]
    kinds = {item["kind"] for item in items}
    head = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kinds.pop() if len(kinds) == 1 else "mixed",
        "count": len(items),
    }
    # One item per line keeps big cohorts compact yet diffable.
    lines = ",\n".join(json.dumps(item) for item in items)
    path.write_text(json.dumps(head)[:-1] + ', "items": [\n' + lines + "\n]}\n")
    return path


def read_truth_json(path: Path) -> list[Truth]:
    """Read a truth JSON file written by write_truth_json back into truth records."""
    path = Path(path)
    root = path.parent.resolve()
    doc = json.loads(path.read_text())
    if doc.get("format") != FORMAT:
        raise ValueError(f"{path} is not a {FORMAT} document")
    out: list[Truth] = []
    for item in doc["items"]:
        cls = _CLASSES[item["kind"]]
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in item:
                continue
            value = item[f.name]
            if f.name.endswith("path"):
                value = root / value
            elif f.name == "masks":
                with np.load(root / value) as data:
                    value = data["masks"]
            elif f.name == "lumen_centres":
                value = np.asarray(value, dtype=float).reshape(-1, 2)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
        out.append(cls(**kwargs))
    return out
