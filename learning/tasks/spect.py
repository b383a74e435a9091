"""Task 3: LAD / RCA / LCX from rest + stress polar maps and clinical features (per patient: max of the three)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from learning import metrics, uncertainty
from learning.domain import TERRITORIES
from learning.models.spect import FUSIONS
from learning.spect_scoring import ica_obstructive, territory_flags, territory_rollup
from learning.tasks.base import (
    Example,
    HyperparameterError,
    Hyperparameters,
    ItemRef,
    ItemScore,
    SpectRef,
    TaskSpec,
    TrainingError,
    as_float_list,
    example_groups,
)

# Clinical features scaled to about 0 … 1; missing values take the cohort-typical value.
CLINICAL_DEFAULTS = {"age": 60.0, "weight_kg": 80.0, "height_cm": 170.0}
SEX_CODE = {"M": 1.0, "F": 0.0}


@dataclass(frozen=True)
class SpectParams(Hyperparameters):
    size: int = 64  # polar maps are resized to size × size (the paper: 290)
    fusion: str = "early"
    width: int = 16
    threshold: float = 0.5
    weight_decay: float = 0.01  # the paper's L2 0.01 on the head

    def check(self) -> None:
        super().check()
        if self.fusion not in FUSIONS:
            raise HyperparameterError("fusion", f"must be one of {', '.join(FUSIONS)}")
        if self.size < 8:
            raise HyperparameterError("size", "must be at least 8 pixels")
        if not 0 < self.threshold < 1:
            raise HyperparameterError("threshold", "must lie strictly between 0 and 1")


def clinical_vector(ref: SpectRef) -> list[float]:
    return [
        (ref.age if ref.age is not None else CLINICAL_DEFAULTS["age"]) / 100.0,
        SEX_CODE.get(ref.sex, 0.5),
        (ref.weight_kg if ref.weight_kg is not None else CLINICAL_DEFAULTS["weight_kg"]) / 100.0,
        (ref.height_cm if ref.height_cm is not None else CLINICAL_DEFAULTS["height_cm"]) / 200.0,
    ]


class SpectTask(TaskSpec):
    name = "spect_territory"
    families = ("polar_cnn",)
    score_keys = frozenset({"entropy", "summed_binary_entropy"})
    params_class: ClassVar[type[Hyperparameters]] = SpectParams
    primary_metric = "patient_auc"

    @classmethod
    def target_from_payload(cls, payload: dict[str, Any], context: dict[str, Any] | None = None) -> Any:
        """Return [LAD, RCA, LCX] as 0/1 from the expert read, or from ICA when `context["reference"] == "ica"`."""
        context = context or {}
        if context.get("reference") == "ica":
            ica = context.get("ica")
            if not ica:
                return None  # no angiography: a pseudo-label may stand in (the paper's strategy 5)
            flags = ica_obstructive(ica)
        else:
            rollup = territory_rollup(payload["stress"], payload["rest"])
            flags = territory_flags(rollup, payload.get("flag_overrides") or {})
        return [int(flags[name]) for name in TERRITORIES]

    @classmethod
    def target_from_output(cls, output: dict[str, Any]) -> list[int] | None:
        """Return the territory flags a stored prediction set, as a training target."""
        abnormal = output.get("abnormal")
        return None if not abnormal else [int(bool(abnormal[name])) for name in TERRITORIES]

    def model_kwargs(self, family: str, params: Hyperparameters) -> dict[str, Any]:
        assert isinstance(params, SpectParams)
        return {"fusion": params.fusion, "clinical_features": 4, "width": params.width}

    def polar_map(self, path: str, size: int) -> torch.Tensor:
        def load() -> torch.Tensor:
            with Image.open(self.resolve(path)) as image:
                array = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
            return F.interpolate(torch.from_numpy(array)[None, None], size=(size, size), mode="area")[0]

        return self.cached((path, size), load)

    def inputs(self, refs: Sequence[SpectRef], size: int) -> tuple[torch.Tensor, ...]:
        rest = torch.stack([self.polar_map(ref.rest_path, size) for ref in refs])
        stress = torch.stack([self.polar_map(ref.stress_path, size) for ref in refs])
        clinical = torch.tensor([clinical_vector(ref) for ref in refs], dtype=torch.float32)
        return rest, stress, clinical

    def batch(self, family, examples, params, rng, train):
        assert isinstance(params, SpectParams)
        rest, stress, clinical = self.inputs([e.ref for e in examples], params.size)
        if train:  # count noise: a little multiplicative jitter per map
            rest = rest * torch.from_numpy(rng.uniform(0.95, 1.05, (len(examples), 1, 1, 1)).astype(np.float32))
            stress = stress * torch.from_numpy(rng.uniform(0.95, 1.05, (len(examples), 1, 1, 1)).astype(np.float32))
        return (rest, stress, clinical), torch.tensor([e.target for e in examples], dtype=torch.float32)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, params: Hyperparameters | None = None) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, targets)

    def score_batch(self, model, family, refs, params, rng):
        assert isinstance(params, SpectParams)
        device = next(model.parameters()).device
        rest, stress, clinical = (t.to(device) for t in self.inputs(refs, params.size))
        features = model.embed(rest, stress)
        probs = torch.sigmoid(model.classify(features, clinical)).cpu().numpy()
        embedding = features.cpu().numpy()
        scores = []
        for i, ref in enumerate(refs):
            p = probs[i]
            summed = float(uncertainty.summed_binary_entropy(p))
            detail = {"entropy": summed, "summed_binary_entropy": summed}
            flags = [int(v >= params.threshold) for v in p]
            scores.append(
                ItemScore(
                    item_id=ref.item_id,
                    output={
                        "probabilities": dict(zip(TERRITORIES, as_float_list(p), strict=True)),
                        "patient": round(float(p.max()), 6),
                        "abnormal": dict(zip(TERRITORIES, map(bool, flags), strict=True)),
                        "family": family,
                    },
                    uncertainty=summed,
                    detail=detail,
                    confidence=float(np.min(np.maximum(p, 1 - p))),
                    pseudo_target=flags,
                    embedding=tuple(as_float_list(embedding[i])),
                )
            )
        return scores

    baseline_name = "constant score"

    def metric_rows(self, scores: Sequence[ItemScore], examples: Sequence[Example]) -> tuple[np.ndarray, ...]:
        by_item = {s.item_id: s for s in scores}
        truth = np.array([any(e.target) for e in examples], dtype=bool)
        patient = np.array(
            [max(by_item[e.ref.item_id].output["probabilities"][name] for name in TERRITORIES) for e in examples]
        )
        return truth, patient

    def metric_value(self, *rows: np.ndarray) -> float:
        return metrics.roc_auc(rows[0], rows[1])

    proper_score = "log loss"

    def item_losses(self, scores: Sequence[ItemScore], examples: Sequence[Example]) -> np.ndarray:
        """Each patient's binary cross-entropy of the patient score (as `metric_rows`) against the reference."""
        truth, patient = self.metric_rows(scores, examples)
        p = np.clip(patient.astype(float), 1e-6, 1 - 1e-6)
        return -np.where(truth, np.log(p), np.log(1 - p))

    def baseline_scores(self, train: Sequence[Example], refs: Sequence[ItemRef]) -> list[ItemScore]:
        """Each territory's training prevalence for every patient: a constant score (patient AUC 0.5)."""
        targets = np.array([e.target for e in train], dtype=float).reshape(-1, len(TERRITORIES))
        prevalence = targets.mean(axis=0) if len(targets) else np.full(len(TERRITORIES), 0.5)
        output = {
            "probabilities": dict(zip(TERRITORIES, as_float_list(prevalence), strict=True)),
            "patient": round(float(prevalence.max()), 6),
            "abnormal": {name: bool(v >= 0.5) for name, v in zip(TERRITORIES, prevalence, strict=True)},
            "family": "constant",
        }
        return [
            ItemScore(item_id=ref.item_id, output=dict(output), uncertainty=0.0, detail={}, confidence=1.0)
            for ref in refs
        ]

    def evaluate(self, scores: Sequence[ItemScore], examples: Sequence[Example]) -> dict[str, Any]:
        by_item = {s.item_id: s for s in scores}
        kept = [e for e in examples if e.ref.item_id in by_item]
        pairs = [(e.target, by_item[e.ref.item_id]) for e in kept]
        if not pairs:
            raise TrainingError("no scored patients to evaluate")
        truth = np.array([t for t, _ in pairs], dtype=bool)
        probs = np.array([[s.output["probabilities"][name] for name in TERRITORIES] for _, s in pairs])
        report = metrics.territory_metrics(truth, probs)
        point, low, high = metrics.bootstrap_ci(
            lambda t, p: metrics.roc_auc(t.any(axis=1), p.max(axis=1)),
            truth,
            probs,
            n_boot=200,
            groups=example_groups(kept),
        )
        vessel_auc = [report[name]["auc"] for name in TERRITORIES]
        defined = [v for v in vessel_auc if not np.isnan(v)]
        return {
            "patient_auc": report["patient"]["auc"],
            "patient_auc_ci": [low, high],
            "vessel_auc_mean": float(np.mean(defined)) if defined else float("nan"),
            "per_vessel": {name: report[name] for name in TERRITORIES},
            "patient": report["patient"],
        }
