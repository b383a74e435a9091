"""Task 2: calcium masks on IVOCT pullback frames with a U-Net, rotation augmentation and rotation TTA."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pydicom
import torch
import torch.nn.functional as F
from scipy import ndimage

from learning import metrics, uncertainty
from learning.masks import MaskFormatError, mask_decode, mask_encode
from learning.models import bce_dice_loss
from learning.tasks.base import (
    Example,
    HyperparameterError,
    Hyperparameters,
    ItemRef,
    ItemScore,
    OctFrameRef,
    TaskSpec,
    TrainingError,
    example_groups,
    ref_as,
)

ROTATIONS = (0, 1, 2, 3)  # quarter turns, as in the OCT paper's 90/180/270° augmentation


@dataclass(frozen=True)
class OctParams(Hyperparameters):
    size: int = 128  # frames are resized to size × size for the network (masks come back at full size)
    base: int = 8  # feature maps of the first down block (the paper: 16)
    depth: int = 4
    # Binary cross-entropy, as in the paper, with calcium pixels (2–5 % of a frame) weighted up: unweighted, or
    # with a per-frame soft Dice term that half the frames (no calcium) satisfy by painting nothing, small
    # training sets collapse to the empty mask.
    pos_weight: float = 5.0
    dice_weight: float = 0.0
    threshold: float = 0.5  # the starting threshold; refitted on validation with the smallest region kept
    agreement_dice: float = 0.5  # two annotators' masks with Dice at least this need no adjudication to train
    min_steps: int = 400
    min_validation: int = 4  # validation frames (one with calcium) needed to fit the threshold and region size
    # Resolution jitter while training: each frame is resampled through a random size between size / (1 + j) and
    # size, as if acquired at another resolution and resized (speckle and texture then cover other pixel scales).
    # Trained at 48² without it, models scored 0.05-0.20 lower Dice on pullbacks made at 64² or 96² (9 of 9 seeds;
    # the same on 48²).
    resolution_jitter: float = 1.0

    def check(self) -> None:
        super().check()
        if self.size < 2**self.depth:
            raise HyperparameterError("size", f"must be at least {2**self.depth} for depth {self.depth}")
        if self.base < 1 or self.depth < 1:
            raise HyperparameterError("base", "base and depth must be at least 1")
        if not 0 < self.threshold < 1:
            raise HyperparameterError("threshold", "must lie strictly between 0 and 1")
        if self.pos_weight <= 0:
            raise HyperparameterError("pos_weight", "must be positive")
        if self.dice_weight < 0:
            raise HyperparameterError("dice_weight", "must not be negative")
        if not 0 <= self.resolution_jitter <= 1:
            raise HyperparameterError("resolution_jitter", "must lie between 0 and 1")


# What `calibrate` tries on the validation frames: thresholds, and the smallest region kept as a fraction of the
# frame (0.002 of a 400² frame is 320 pixels, a calcium arc of about 10° by 0.3 mm).
CALIBRATION_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
CALIBRATION_MIN_AREAS = (0.0, 0.002, 0.005, 0.01, 0.02)


def probabilities_to_mask(probabilities: np.ndarray, threshold: float, min_area: float) -> np.ndarray:
    """Return the mask of pixels at or above threshold, without connected regions smaller than min_area (a
    fraction of the frame; 8-connected)."""
    mask = probabilities >= threshold
    if min_area <= 0 or not mask.any():
        return mask
    regions, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    sizes = np.bincount(regions.ravel(), minlength=count + 1)
    keep = sizes >= min_area * mask.size
    keep[0] = False
    return keep[regions]


def resolution_jittered(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Return the (channels, size, size) image resampled down by `factor` (area) and back up (bilinear)."""
    size = image.shape[-1]
    coarse = max(2, round(size / factor))
    if coarse == size:
        return image
    small = F.interpolate(image[None], size=(coarse, coarse), mode="area")
    return F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)[0]


def read_pullback(path: str) -> np.ndarray:
    """Return a pullback's frames as (frames, 3, rows, columns) float32 in [0, 1] (grey frames repeated)."""
    dataset = pydicom.dcmread(path)
    pixels = dataset.pixel_array
    samples = int(getattr(dataset, "SamplesPerPixel", 1))
    frames = int(getattr(dataset, "NumberOfFrames", 1) or 1)
    if frames == 1:
        pixels = pixels[None]
    if samples == 1:
        pixels = np.repeat(pixels[..., None], 3, axis=-1)
    if str(getattr(dataset, "PhotometricInterpretation", "")).startswith("YBR"):
        pixels = pydicom.pixels.convert_color_space(pixels, dataset.PhotometricInterpretation, "RGB")
    top = float(2 ** int(getattr(dataset, "BitsStored", 8)) - 1)
    return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)).astype(np.float32) / top


class OctTask(TaskSpec):
    name = "oct_calcium"
    families = ("unet",)
    score_keys = frozenset({"entropy", "mean_pixel_entropy", "tta_disagreement"})
    params_class: ClassVar[type[Hyperparameters]] = OctParams
    primary_metric = "dice_mean"

    @classmethod
    def target_from_payload(cls, payload: dict[str, Any], context: dict[str, Any] | None = None) -> Any:
        if payload.get("excluded"):
            return None  # excluded frames (guide catheter, poor clearance, artefact) never train
        return payload.get("mask")

    @classmethod
    def targets_agree(cls, first: Any, second: Any) -> bool:
        try:
            a, b = mask_decode(first), mask_decode(second)
        except MaskFormatError:
            return False
        return a.shape == b.shape and metrics.dice(a, b) >= OctParams.agreement_dice

    @classmethod
    def target_from_output(cls, output: dict[str, Any]) -> Any:
        """Return the mask a stored prediction drew (RLE), as a training target."""
        return output.get("mask")

    def model_kwargs(self, family: str, params: Hyperparameters) -> dict[str, Any]:
        assert isinstance(params, OctParams)
        return {"in_channels": 3, "base": params.base, "depth": params.depth, "threshold": params.threshold}

    def pullback(self, path: str, size: int) -> torch.Tensor:
        """Return every frame of a pullback at size² as uint8 (frames, 3, size, size), decoded once per job."""

        def load() -> torch.Tensor:
            frames = torch.from_numpy(read_pullback(str(self.resolve(path))))
            resized = F.interpolate(frames, size=(size, size), mode="area")
            return (resized * 255).round().to(torch.uint8)

        return self.cached((path, size), load)

    def image(self, ref: OctFrameRef, size: int) -> torch.Tensor:
        frames = self.pullback(ref.path, size)
        if not 0 <= ref.frame_index < frames.shape[0]:
            raise TrainingError(f"item {ref.item_id}: frame {ref.frame_index} is outside the pullback")
        return frames[ref.frame_index].float() / 255.0

    @staticmethod
    def target_mask(example: Example, size: int) -> torch.Tensor:
        try:
            mask = mask_decode(example.target)
        except MaskFormatError as error:
            raise TrainingError(f"item {example.ref.item_id}: stored mask is invalid: {error}") from None
        tensor = torch.from_numpy(mask.astype(np.float32))[None, None]
        return F.interpolate(tensor, size=(size, size), mode="nearest")[0]

    def batch(self, family, examples, params, rng, train):
        assert isinstance(params, OctParams)
        images, masks = [], []
        for example in examples:
            image = self.image(example.ref, params.size)
            mask = self.target_mask(example, params.size)
            if train:
                turns = int(rng.choice(ROTATIONS))
                image, mask = torch.rot90(image, turns, dims=(1, 2)), torch.rot90(mask, turns, dims=(1, 2))
                if params.resolution_jitter:
                    image = resolution_jittered(image, rng.uniform(1, 1 + params.resolution_jitter))
            images.append(image)
            masks.append(mask)
        return (torch.stack(images),), torch.stack(masks)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, params: Hyperparameters | None = None) -> torch.Tensor:
        params = params if isinstance(params, OctParams) else OctParams()
        return bce_dice_loss(logits, targets, dice_weight=params.dice_weight, pos_weight=params.pos_weight)

    def probability_maps(self, model, images: torch.Tensor) -> torch.Tensor:
        """Return (batch, rotations, size, size) calcium probabilities, one map per quarter turn turned back."""
        maps = []
        for turns in ROTATIONS:  # predict each quarter turn, then turn the answer back
            logits = model(torch.rot90(images, turns, dims=(2, 3)))
            maps.append(torch.rot90(torch.sigmoid(logits), -turns, dims=(2, 3)))
        return torch.stack(maps, dim=1)[:, :, 0]

    def validation_ranks(self, validation: Sequence[Example], params: Hyperparameters) -> bool:
        """Too few validation frames, or none with calcium, favour the empty mask of the first epochs: below
        `min_validation` frames (one with calcium) the latest epoch is kept instead."""
        assert isinstance(params, OctParams)
        examples = [e for e in validation if e.target is not None]
        return len(examples) >= params.min_validation and any(mask_decode(e.target).any() for e in examples)

    def calibrate(self, model, family, validation, params, seed):
        """Choose the threshold and the smallest region kept that give the best mean Dice on validation.

        The network's probabilities are not masks: on frames without calcium a few stray pixels cost the whole
        frame's Dice, and the best cut-off moves with the training set. Below `min_validation` frames, or with
        no calcium in any of them, nothing is fitted and the starting threshold stays.
        """
        assert isinstance(params, OctParams)
        examples = [e for e in validation if e.target is not None]
        truths = [self.target_mask(e, params.size)[0].numpy() > 0.5 for e in examples]
        if not self.validation_ranks(examples, params):
            reason = f"{len(examples)} validation frames, {sum(bool(t.any()) for t in truths)} with calcium"
            return {"fitted": False, "reason": f"{reason} (need {params.min_validation}, one with calcium)"}
        model.eval()
        device = next(model.parameters()).device
        means = []
        with torch.no_grad():
            for start in range(0, len(examples), params.batch_size):
                chunk = examples[start : start + params.batch_size]
                images = torch.stack([self.image(e.ref, params.size) for e in chunk]).to(device)
                means.append(self.probability_maps(model, images).mean(dim=1).cpu().numpy())
        probabilities = np.concatenate(means)

        def mean_dice(threshold: float, min_area: float) -> float:
            masks = (probabilities_to_mask(p, threshold, min_area) for p in probabilities)
            return float(np.mean([metrics.dice(m, t) for m, t in zip(masks, truths, strict=True)]))

        start = (params.threshold, 0.0)
        results = {(t, a): mean_dice(t, a) for t in CALIBRATION_THRESHOLDS for a in CALIBRATION_MIN_AREAS}
        results[start] = mean_dice(*start)
        # The starting point wins ties: only a gain on validation moves the cut-off.
        best = max(results, key=lambda key: (round(results[key], 9), key == start))
        model.threshold.fill_(best[0])
        model.min_area.fill_(best[1])
        return {
            "fitted": True,
            "n": len(examples),
            "threshold": best[0],
            "min_area": best[1],
            "validation_dice": round(results[best], 6),
            "validation_dice_before": round(results[start], 6),
        }

    def score_batch(self, model, family, refs, params, rng):
        assert isinstance(params, OctParams)
        device = next(model.parameters()).device
        images = torch.stack([self.image(ref, params.size) for ref in refs]).to(device)
        threshold, min_area = float(model.threshold), float(model.min_area)
        pooled: list[torch.Tensor] = []
        hook = model.bottleneck.register_forward_hook(lambda _m, _i, out: pooled.append(out.mean(dim=(2, 3))))
        try:
            stacked = self.probability_maps(model, images)
        finally:
            hook.remove()
        embedding = pooled[0].cpu().numpy()
        scores = []
        for i, ref in enumerate(refs):
            tta = stacked[i].cpu().numpy()
            mean = tta.mean(axis=0)
            full = F.interpolate(
                torch.from_numpy(mean)[None, None], size=(ref.rows, ref.columns), mode="bilinear", align_corners=False
            )[0, 0].numpy()
            mask = probabilities_to_mask(full, threshold, min_area)
            disagreement = uncertainty.tta_disagreement(tta, threshold=threshold)
            pixel_entropy = uncertainty.mean_pixel_entropy(mean)
            detail = {
                "entropy": pixel_entropy,
                "mean_pixel_entropy": pixel_entropy,
                "tta_disagreement": disagreement,
                "calcium_fraction": float(mask.mean()),
            }
            encoded = mask_encode(mask)
            scores.append(
                ItemScore(
                    item_id=ref.item_id,
                    output={"mask": encoded, "calcium_fraction": detail["calcium_fraction"], "family": family},
                    uncertainty=pixel_entropy,
                    detail=detail,
                    # Background pixels are almost always sure, so confidence is agreement across the rotations.
                    confidence=1.0 - disagreement,
                    pseudo_target=encoded,
                    embedding=tuple(round(float(v), 6) for v in embedding[i]),
                )
            )
        return scores

    baseline_name = "empty mask"

    def metric_rows(self, scores: Sequence[ItemScore], examples: Sequence[Example]) -> tuple[np.ndarray, ...]:
        by_item = {s.item_id: s for s in scores}
        dices = [
            metrics.dice(mask_decode(by_item[e.ref.item_id].output["mask"]), mask_decode(e.target)) for e in examples
        ]
        return (np.array(dices, dtype=float),)

    def metric_value(self, *rows: np.ndarray) -> float:
        return float(np.nanmean(rows[0])) if np.isfinite(rows[0]).any() else float("nan")

    def baseline_scores(self, train: Sequence[Example], refs: Sequence[ItemRef]) -> list[ItemScore]:
        """An empty mask for every frame: what a model that never finds calcium scores."""
        scores = []
        for item in refs:
            ref = ref_as(item, OctFrameRef)
            empty = mask_encode(np.zeros((ref.rows, ref.columns), dtype=bool))
            output = {"mask": empty, "calcium_fraction": 0.0, "family": "empty"}
            scores.append(ItemScore(item_id=ref.item_id, output=output, uncertainty=0.0, detail={}, confidence=1.0))
        return scores

    def evaluate(self, scores: Sequence[ItemScore], examples: Sequence[Example]) -> dict[str, Any]:
        by_item = {s.item_id: s for s in scores}
        kept = [e for e in examples if e.target is not None and e.ref.item_id in by_item]
        pairs = [(mask_decode(by_item[e.ref.item_id].output["mask"]), mask_decode(e.target)) for e in kept]
        if not pairs:
            raise TrainingError("no scored frames to evaluate")
        summary: dict[str, Any] = metrics.segmentation_summary(pairs)
        dices = np.array([metrics.dice(p, t) for p, t in pairs])
        low, high = metrics.bootstrap_ci(np.mean, dices, n_boot=200, groups=example_groups(kept))[1:]
        summary["dice_mean_ci"] = [low, high]
        return summary
