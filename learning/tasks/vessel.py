"""Task 1: LCA / RCA / neither from a cine run (R(2+1)D on random temporal windows) or from C-arm geometry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pydicom
import torch
import torch.nn.functional as F
from torch import nn

from learning import metrics, uncertainty
from learning.tasks.base import (
    CineRef,
    Example,
    HyperparameterError,
    Hyperparameters,
    ItemScore,
    TaskSpec,
    TrainingError,
    as_float_list,
)

CLASSES = ("LCA", "RCA", "neither")


@dataclass(frozen=True)
class VesselParams(Hyperparameters):
    size: int = 64  # frames are resized to size × size
    clip_frames: int = 16  # the temporal window the network sees
    frame_step: int = 1  # take every n-th frame inside a window (covers longer runs)
    crops: int = 10  # random windows averaged at inference (the seed paper used 10)
    width: int = 8  # channels of the first R(2+1)D block
    mc_dropout_passes: int = 0  # > 1 adds BALD from MC dropout to the uncertainty detail
    pixel_model_min_labels: int = 40  # below this many labelled runs, train the metadata model

    def check(self) -> None:
        super().check()
        for name in ("size", "clip_frames", "frame_step", "crops", "width"):
            if getattr(self, name) < 1:
                raise HyperparameterError(name, "must be at least 1")
        if self.size < 16:
            raise HyperparameterError("size", "must be at least 16 pixels")
        if self.mc_dropout_passes == 1 or self.mc_dropout_passes < 0:
            raise HyperparameterError("mc_dropout_passes", "must be 0 (off) or at least 2")


def read_cine(path: str) -> np.ndarray:
    """Return a cine run's frames as (frames, rows, columns) float32 in [0, 1]."""
    dataset = pydicom.dcmread(path)
    pixels = dataset.pixel_array
    if int(getattr(dataset, "SamplesPerPixel", 1)) != 1:
        raise TrainingError(f"{path}: vessel-type runs must be monochrome")
    if pixels.ndim == 2:
        pixels = pixels[None]
    top = float(2 ** int(getattr(dataset, "BitsStored", 8)) - 1)
    frames = pixels.astype(np.float32) / top
    if str(getattr(dataset, "PhotometricInterpretation", "")) == "MONOCHROME1":
        frames = 1.0 - frames
    return frames


class VesselTask(TaskSpec):
    name = "vessel_type"
    families = ("r2plus1d", "metadata_mlp")
    score_keys = frozenset({"entropy", "margin", "least_confidence", "crop_spread", "bald"})

    @classmethod
    def strategy_problem(cls, strategy: str, params: Hyperparameters) -> str | None:
        """BALD needs Monte Carlo dropout passes at scoring time."""
        if strategy == "bald" and getattr(params, "mc_dropout_passes", 0) < 2:
            return "bald needs Monte Carlo dropout: set training_hparams.mc_dropout_passes to 2 or more"
        return super().strategy_problem(strategy, params)
    params_class: ClassVar[type[Hyperparameters]] = VesselParams
    primary_metric = "macro_f1"

    @classmethod
    def target_from_payload(cls, payload: dict[str, Any], context: dict[str, Any] | None = None) -> int | None:
        vessel = payload.get("vessel")
        return CLASSES.index(vessel) if vessel in CLASSES else None  # "unusable" runs never train

    @classmethod
    def choose_family(cls, n_labelled: int, params: Hyperparameters) -> str:
        assert isinstance(params, VesselParams)
        return "r2plus1d" if n_labelled >= params.pixel_model_min_labels else "metadata_mlp"

    @classmethod
    def target_from_output(cls, output: dict[str, Any]) -> int | None:
        """Return the class a stored prediction chose, as a training target."""
        vessel = output.get("vessel")
        return CLASSES.index(vessel) if vessel in CLASSES else None

    def model_kwargs(self, family: str, params: Hyperparameters) -> dict[str, Any]:
        assert isinstance(params, VesselParams)
        if family == "r2plus1d":
            return {"num_classes": len(CLASSES), "width": params.width}
        return {"num_classes": len(CLASSES)}

    def usable(self, family: str, example: Example) -> bool:
        return family != "metadata_mlp" or example.ref.geometry is not None

    def prepare(self, model: nn.Module, family: str, train: Sequence[Example], params: Hyperparameters) -> None:
        if family == "metadata_mlp":
            geometry = torch.tensor([e.ref.geometry for e in train], dtype=torch.float32)
            std = geometry.std(dim=0, unbiased=False) if len(train) > 1 else torch.ones(geometry.shape[1])
            model.set_normalisation(geometry.mean(dim=0), torch.clamp(std, min=1e-3))

    # --- pixels
    def frames(self, ref: CineRef, size: int) -> torch.Tensor:
        """Return the run resized to size² as a (frames, size, size) uint8 tensor, decoded once per job."""

        def load() -> torch.Tensor:
            frames = torch.from_numpy(read_cine(str(self.resolve(ref.path))))
            resized = F.interpolate(frames[:, None], size=(size, size), mode="area")[:, 0]
            return (resized * 255).round().to(torch.uint8)

        return self.cached((ref.path, size), load)

    def window(self, frames: torch.Tensor, params: VesselParams, rng: np.random.Generator) -> torch.Tensor:
        """Return one random temporal window (1, clip_frames, size, size), zero-padded at the end if short."""
        span = (params.clip_frames - 1) * params.frame_step + 1
        latest = max(frames.shape[0] - span, 0)
        start = int(rng.integers(0, latest + 1))
        clip = frames[start : start + span : params.frame_step].float() / 255.0
        clip = (clip - 0.5) / 0.25
        missing = params.clip_frames - clip.shape[0]
        if missing > 0:
            clip = torch.cat([clip, clip.new_zeros((missing, *clip.shape[1:]))])
        return clip[None]

    def batch(self, family, examples, params, rng, train):
        assert isinstance(params, VesselParams)
        targets = torch.tensor([e.target for e in examples], dtype=torch.long)
        if family == "metadata_mlp":
            return (torch.tensor([e.ref.geometry for e in examples], dtype=torch.float32),), targets
        clips = []
        for example in examples:
            clip = self.window(self.frames(example.ref, params.size), params, rng)
            if train:  # brightness / contrast jitter; the C-arm view itself is the signal, so no flips
                clip = clip * float(rng.uniform(0.85, 1.15)) + float(rng.uniform(-0.2, 0.2))
            clips.append(clip)
        return (torch.stack(clips),), targets

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets)

    # --- scoring
    def score_batch(self, model, family, refs, params, rng):
        assert isinstance(params, VesselParams)
        device = next(model.parameters()).device
        if family == "metadata_mlp":
            geometry = torch.tensor([ref.geometry for ref in refs], dtype=torch.float32, device=device)
            features = model.embed(geometry)
            probs = torch.softmax(model.classify(features), dim=1).cpu().numpy()[:, None, :]
            embeddings = features.cpu().numpy()
        else:
            clips = torch.stack(
                [self.window(self.frames(ref, params.size), params, rng) for ref in refs for _ in range(params.crops)]
            ).to(device)
            features = model.pool(model.features(clips)).flatten(1)
            logits = model.classifier(features)
            probs = torch.softmax(logits, dim=1).cpu().numpy().reshape(len(refs), params.crops, len(CLASSES))
            embeddings = features.reshape(len(refs), params.crops, -1).mean(dim=1).cpu().numpy()
        mc = self._mc_dropout(model, family, refs, params, rng) if params.mc_dropout_passes > 1 else None
        scores = []
        for i, ref in enumerate(refs):
            mean = probs[i].mean(axis=0)
            detail = {
                "entropy": float(uncertainty.entropy(mean)),
                "margin": float(uncertainty.margin(mean)),
                "least_confidence": float(uncertainty.least_confidence(mean)),
                "crop_spread": float(uncertainty.crop_spread(probs[i])) if probs.shape[1] > 1 else 0.0,
            }
            if mc is not None:
                detail["bald"] = float(uncertainty.bald(mc[i]))
            best = int(mean.argmax())
            scores.append(
                ItemScore(
                    item_id=ref.item_id,
                    output={
                        "probabilities": dict(zip(CLASSES, as_float_list(mean), strict=True)),
                        "vessel": CLASSES[best],
                        "crops": int(probs.shape[1]),
                        "family": family,
                    },
                    uncertainty=detail["entropy"],
                    detail=detail,
                    confidence=float(mean[best]),
                    pseudo_target=best,
                    embedding=tuple(as_float_list(embeddings[i])),
                )
            )
        return scores

    def _mc_dropout(self, model, family, refs, params: VesselParams, rng) -> np.ndarray:
        """Return (items, passes, classes) probabilities with dropout active (one window per pass)."""
        dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
        for module in dropouts:
            module.train()
        try:
            passes = []
            for _ in range(params.mc_dropout_passes):
                if family == "metadata_mlp":
                    inputs = torch.tensor([ref.geometry for ref in refs], dtype=torch.float32)
                else:
                    inputs = torch.stack([self.window(self.frames(ref, params.size), params, rng) for ref in refs])
                logits = model(inputs.to(next(model.parameters()).device))
                passes.append(torch.softmax(logits, dim=1).cpu().numpy())
        finally:
            for module in dropouts:
                module.eval()
        return np.stack(passes, axis=1)

    def evaluate(self, scores: Sequence[ItemScore], examples: Sequence[Example]) -> dict[str, Any]:
        by_item = {s.item_id: s for s in scores}
        pairs = [(e.target, by_item[e.ref.item_id]) for e in examples if e.ref.item_id in by_item]
        if not pairs:
            raise TrainingError("no scored examples to evaluate")
        truth = np.array([CLASSES[t] for t, _ in pairs])
        predicted = np.array([s.output["vessel"] for _, s in pairs])
        probs = np.array([[s.output["probabilities"][c] for c in CLASSES] for _, s in pairs])
        present = [c for c in CLASSES if (truth == c).any()]
        auc = float("nan")
        if len(present) >= 2:
            columns = [CLASSES.index(c) for c in present]
            auc = metrics.multiclass_auc_ovr(truth, probs[:, columns], present)
        per_class = metrics.f1_scores(truth, predicted, CLASSES)
        low, high = metrics.bootstrap_ci(lambda t, p: metrics.macro_f1(t, p, CLASSES), truth, predicted, n_boot=200)[1:]
        return {
            "macro_f1": metrics.macro_f1(truth, predicted, CLASSES),
            "macro_f1_ci": [low, high],
            "accuracy": metrics.accuracy(truth, predicted),
            "auc": auc,
            "f1": {name: value for name, value in per_class.items()},
        }
