"""A fourth labelling task defined only here: dark or bright, on generated grey PNG images.

It touches no production module: it is listed in LUMEN_TASKS by the tests that use it (`image_task` fixture),
and its learning side joins learning's registry the same way. It passes the same contract as the built-in tasks
(tests/annotation/test_task_contract.py), which is the proof that a task is one plugin.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from django.conf import settings
from django.db import transaction
from PIL import Image, UnidentifiedImageError
from torch import nn

from annotation.ingest.deid import PatientKey
from annotation.ingest.results import FileResult, Outcome, Reason
from annotation.ingest.store import patient_for
from annotation.label_schemas import LabelPayloadError
from annotation.models import Item
from annotation.quality.agreement import _pairs
from annotation.tasks import LabelTask
from annotation.tasks.frames import enqueue
from annotation.tasks.label_studio import Regions, choice_region, choices_tag, tag
from learning import uncertainty
from learning.tasks import Example, ItemScore, TaskSpec, TrainingError
from learning.tasks.base import as_float_list

CLASSES = ("dark", "bright")
SIDE = 8


@dataclass(frozen=True)
class ImageRef:
    item_id: int
    path: str


def image_path(item_id: int) -> str:
    return f"images/{item_id}.png"


def png_bytes(brightness: int, seed: int) -> bytes:
    """Return a 16x16 grey PNG around `brightness` with some noise."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.normal(brightness, 25, (16, 16)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------- learning
class TinyLinear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(SIDE * SIDE, len(CLASSES))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.linear(pixels)


class ImageClassSpec(TaskSpec):
    name = "image_class"
    families = ("tiny_linear",)
    primary_metric = "accuracy"
    score_keys = frozenset({"entropy", "margin", "least_confidence"})
    classes = CLASSES
    baseline_name = "majority class"

    @classmethod
    def target_from_payload(cls, payload, context=None):
        return CLASSES.index(payload["class"]) if payload.get("class") in CLASSES else None

    @classmethod
    def target_from_output(cls, output):
        return CLASSES.index(output["class"])

    def build(self, family, params) -> nn.Module:
        return TinyLinear()

    def _pixels(self, ref: ImageRef) -> torch.Tensor:
        def load() -> torch.Tensor:
            image = Image.open(self.resolve(ref.path)).convert("L").resize((SIDE, SIDE))
            return torch.tensor(np.asarray(image, dtype=np.float32).ravel() / 255.0)

        return self.cached(ref.path, load)

    def batch(self, family, examples, params, rng, train):
        pixels = torch.stack([self._pixels(e.ref) for e in examples])
        return (pixels,), torch.tensor([e.target for e in examples], dtype=torch.long)

    def loss(self, logits, targets, params=None):
        return nn.functional.cross_entropy(logits, targets)

    def score_batch(self, model, family, refs, params, rng):
        device = next(model.parameters()).device
        with torch.no_grad():
            probs = torch.softmax(model(torch.stack([self._pixels(r) for r in refs]).to(device)), dim=1).cpu().numpy()
        out = []
        for ref, p in zip(refs, probs, strict=True):
            best = int(p.argmax())
            detail = {
                "entropy": float(uncertainty.entropy(p)),
                "margin": float(uncertainty.margin(p)),
                "least_confidence": float(uncertainty.least_confidence(p)),
            }
            output = {"class": CLASSES[best], "probabilities": dict(zip(CLASSES, as_float_list(p), strict=True))}
            out.append(
                ItemScore(ref.item_id, output, detail["entropy"], detail, float(p[best]), best, tuple(as_float_list(p)))
            )
        return out

    def evaluate(self, scores: Sequence[ItemScore], examples: Sequence[Example]) -> dict[str, Any]:
        by_item = {s.item_id: s for s in scores}
        kept = [e for e in examples if e.ref.item_id in by_item]
        if not kept:
            raise TrainingError("no scored examples to evaluate")
        truth, predicted = self.metric_rows(scores, kept)
        return {"accuracy": self.metric_value(truth, predicted), "n": len(kept)}

    def metric_rows(self, scores, examples):
        by_item = {s.item_id: s for s in scores}
        truth = np.array([e.target for e in examples], dtype=int)
        predicted = np.array([CLASSES.index(by_item[e.ref.item_id].output["class"]) for e in examples], dtype=int)
        return truth, predicted

    def metric_value(self, *rows):
        truth, predicted = rows
        return float(np.mean(truth == predicted)) if len(truth) else 0.0

    def baseline_scores(self, train, refs):
        counts = np.bincount([e.target for e in train], minlength=len(CLASSES)).astype(float)
        probs = counts / counts.sum() if counts.sum() else np.full(len(CLASSES), 1 / len(CLASSES))
        best = int(probs.argmax())
        output = {"class": CLASSES[best], "probabilities": dict(zip(CLASSES, as_float_list(probs), strict=True))}
        return [ItemScore(r.item_id, dict(output), 0.0, {}, float(probs[best])) for r in refs]


# ---------------------------------------------------------------------------------------------------- platform
class ImageClass(LabelTask):
    name = "image_class"
    title = "Image class (dark / bright)"
    upload_hint = "PNG images named <patient>-<anything>.png"
    burned_in_check = False
    tool_script = "frontend/tools/vessel_type.js"
    tool_style = "frontend/tools/vessel_type.css"

    def learning(self) -> type[TaskSpec]:
        return ImageClassSpec

    def claims_upload(self, name: str) -> bool:
        return name.lower().endswith(".png")

    def ingest_uploads(self, project, files) -> list[FileResult]:
        results = []
        for source in files:
            data = source.read()
            try:
                Image.open(io.BytesIO(data)).verify()
            except (UnidentifiedImageError, OSError):
                results.append(FileResult(source.name, Outcome.REJECTED, str(Reason.NOT_DICOM), "not a PNG image"))
                continue
            patient_id = Path(source.name).name.split("-", 1)[0]
            with transaction.atomic():
                patient = patient_for(PatientKey(patient_id=patient_id, name="", birth_date="", issuer="image-test"))
                item = Item.objects.create(project=project, kind="image", patient=patient, title=source.name)
                target = Path(settings.MEDIA_ROOT) / image_path(item.pk)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                enqueue(project, [item.pk])
            digest = hashlib.sha256(data).hexdigest()[:12]
            results.append(FileResult(source.name, Outcome.STORED, "", f"image {digest}", items_created=1))
        return results

    def item_ref(self, item: Item) -> ImageRef:
        return ImageRef(item_id=item.pk, path=image_path(item.pk))

    def parse_label(self, payload: Any, item: Item):
        if not isinstance(payload, dict) or set(payload) != {"class"}:
            raise LabelPayloadError("class", 'a label is {"class": "dark" | "bright"}')
        if payload["class"] not in CLASSES:
            raise LabelPayloadError("class", f"must be one of {', '.join(CLASSES)}")
        return payload["class"]

    # Label Studio: the image and one choice; what the platform pushes, pulls and files is the same as for the
    # built-in tasks.
    def label_studio_config(self) -> str:
        return tag("View", tag("Image", name="image", value="$image"), choices_tag("class", "image", CLASSES))

    def label_studio_images(self, item: Item) -> dict[str, Path]:
        return {"image": Path(settings.MEDIA_ROOT) / image_path(item.pk)}

    def label_studio_result(self, payload: Any, item: Item) -> list[dict]:
        return [choice_region("class", "image", payload["class"])]

    def label_studio_payload(self, regions: Regions, item: Item) -> dict:
        chosen = regions.choice("class", CLASSES)
        if chosen is None:
            raise LabelPayloadError("class", "no class chosen")
        return {"class": chosen}

    def label_studio_prediction(self, output: dict, item: Item) -> list[dict]:
        return [choice_region("class", "image", output["class"])]

    def agreement(self, by_item) -> dict:
        rows = [(a.payload["class"], b.payload["class"]) for pairs in _pairs(by_item).values() for a, b in pairs]
        overall: dict[str, Any] = {"items": len(rows)}
        if rows:
            overall["percent_agreement"] = float(np.mean([a == b for a, b in rows]))
        return {"overall": overall, "pairs": [{"pairs": len(rows)}] if rows else []}
