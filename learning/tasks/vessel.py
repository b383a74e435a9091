"""Task 1: LCA / RCA / neither from a cine run: its contrast image, its C-arm angles and its frames.

Families: `contrast_logreg` (the default: a scikit-learn logistic regression on the two C-arm angles with
quadratic terms and on the orientation histogram of the run's contrast image, i.e. where iodine filled vessels
and which way they run), `fused_vessel` (R(2+1)D video networks stacked with that regression on validation:
the video counts only as far as it helps on validation; from `pixel_model_min_labels` labelled runs),
`metadata_logreg` (the angles alone: the baseline the issue names), `r2plus1d` and `metadata_mlp` (each alone,
for comparisons). The classes a model predicts are the project's (`classes`) that have training examples.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pydicom
import torch
import torch.nn.functional as F
from torch import nn

from learning import metrics, uncertainty
from learning.domain import VESSEL_CLASSES
from learning.models.vessel import (
    CONTRAST_CELLS,
    CONTRAST_ORIENTATIONS,
    CONTRAST_SIZE,
    ClassHead,
    ContrastLogistic,
    FusedVessel,
    MetadataMLP,
    QuadraticLogistic,
)
from learning.tasks.base import (
    CineRef,
    Example,
    HyperparameterError,
    Hyperparameters,
    ItemRef,
    ItemScore,
    TaskSpec,
    TrainingError,
    as_float_list,
    example_groups,
    ref_as,
)

CLASSES = VESSEL_CLASSES
PIXEL_FAMILIES = frozenset({"r2plus1d", "fused_vessel"})
GEOMETRY_FAMILIES = frozenset({"metadata_mlp", "metadata_logreg"})
LINEAR_FAMILIES = frozenset({"metadata_logreg", "contrast_logreg"})  # fitted by scikit-learn, no epochs
VECTOR_FAMILIES = GEOMETRY_FAMILIES | {"contrast_logreg"}  # one feature vector per run, no frames
# Candidate regularisation strengths (C) of the logistic regressions, chosen by cross-validated log-loss.
LOGISTIC_CS = tuple(np.logspace(-3, 3, 13).tolist())
# The contrast image is computed at this size whatever the run's matrix (256² and 512² runs look alike).
CONTRAST_WORKING_SIZE = 128


@dataclass(frozen=True)
class VesselParams(Hyperparameters):
    # Defaults chosen on held-out synthetic cohorts of other sizes and run lengths (benchmarks/al_simulation):
    # small frames and a strided window generalise better than larger ones at a few hundred labels.
    epochs: int = 16
    batch_size: int = 4
    learning_rate: float = 3e-3
    patience: int = 0  # train every epoch; the epoch best on validation is kept all the same
    size: int = 32  # frames are resized to size × size
    clip_frames: int = 8  # the temporal window the network sees
    frame_step: int = 2  # take every n-th frame inside a window (covers longer runs)
    crops: int = 10  # random windows averaged at inference (the seed paper used 10)
    width: int = 16  # channels of the first R(2+1)D block
    mc_dropout_passes: int = 0  # > 1 adds BALD from MC dropout to the uncertainty detail
    # Below this many labelled runs the contrast-image regression trains alone; from it on, video networks
    # join it (fused_vessel). On the benchmark cohorts the video network alone needed ~360 labels for 0.93
    # accuracy where the regression passes 0.95 by 80, and each video retrain costs minutes on a CPU.
    pixel_model_min_labels: int = 300
    # The classes the project trains, comma-separated (a lead drops "neither" with "LCA,RCA"); a class with
    # no training example is dropped as well when training starts.
    classes: str = ",".join(CLASSES)
    # Post-hoc fitting on validation needs at least this many validation runs (temperature, stacking).
    min_validation: int = 8
    # Training-time augmentation of clips: rotation ±10°, scale 0.85–1.15, shift ±10 %, playback speed
    # 0.5–1.5× (the seed paper's ranges, narrowed), brightness and contrast.
    augment: bool = False
    # Video networks in the fused model, trained from different initialisations and averaged.
    ensemble: int = 3

    def check(self) -> None:
        super().check()
        for name in ("size", "clip_frames", "frame_step", "crops", "width"):
            if getattr(self, name) < 1:
                raise HyperparameterError(name, "must be at least 1")
        if self.size < 16:
            raise HyperparameterError("size", "must be at least 16 pixels")
        if self.mc_dropout_passes == 1 or self.mc_dropout_passes < 0:
            raise HyperparameterError("mc_dropout_passes", "must be 0 (off) or at least 2")
        names = self.class_names
        unknown = [c for c in names if c not in CLASSES]
        if unknown or not names or len(set(names)) != len(names):
            raise HyperparameterError("classes", f"must name distinct classes among {', '.join(CLASSES)}")
        if self.min_validation < 2:
            raise HyperparameterError("min_validation", "must be at least 2")
        if not 1 <= self.ensemble <= 10:
            raise HyperparameterError("ensemble", "must be between 1 and 10")

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(c.strip() for c in self.classes.split(",") if c.strip())

    @property
    def active(self) -> tuple[bool, ...]:
        names = self.class_names
        return tuple(c in names for c in CLASSES)


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


def contrast_image(frames: np.ndarray) -> np.ndarray:
    """Return where contrast darkened the run: each pixel's bright level (90th percentile over time) minus its
    darkest value, resampled to CONTRAST_SIZE². Background, bones and the heart shadow cancel; vessels filled in
    any frame remain, so the image does not depend on when in the run the injection happened."""
    resized = F.interpolate(
        torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))[:, None],
        size=(CONTRAST_WORKING_SIZE, CONTRAST_WORKING_SIZE),
        mode="area",
    )[:, 0].numpy()
    darkened = np.clip(np.percentile(resized, 90, axis=0) - resized.min(axis=0), 0.0, None)
    small = F.adaptive_avg_pool2d(torch.from_numpy(darkened)[None, None], CONTRAST_SIZE)[0, 0]
    return small.numpy()


def contrast_features(frames: np.ndarray) -> np.ndarray:
    """Return the HOG descriptor (scikit-image) of the run's contrast image: CONTRAST_FEATURES floats."""
    from skimage.feature import hog

    cell = CONTRAST_SIZE // CONTRAST_CELLS
    descriptor = hog(
        contrast_image(frames),
        orientations=CONTRAST_ORIENTATIONS,
        pixels_per_cell=(cell, cell),
        cells_per_block=(CONTRAST_CELLS, CONTRAST_CELLS),
        block_norm="L2",
        feature_vector=True,
    )
    return descriptor.astype(np.float32)


def fit_quadratic(
    model: QuadraticLogistic,
    examples: Sequence[Example],
    active: Sequence[bool],
    seed: int = 0,
    images: np.ndarray | None = None,
) -> dict:
    """Fit a logistic regression with scikit-learn on the examples and copy it into `model`'s buffers.

    The two angles are imputed (a run without them counts as the mean), standardised, given quadratic terms
    and standardised again; with `images` (one contrast descriptor per example, for `ContrastLogistic`) the
    standardised descriptor joins them. Then an L2 logistic regression whose strength is chosen by stratified
    cross-validation over these examples (plain C = 1 when a class has fewer than 2 examples). Returns what
    was fitted, for the model's metrics.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    geometries = [ref_as(e.ref, CineRef).geometry for e in examples]
    x = np.array([g[:2] if g is not None else (np.nan, np.nan) for g in geometries], dtype=np.float64)
    y = np.array([e.target for e in examples], dtype=int)
    present = sorted(set(y.tolist()))
    with torch.no_grad():
        model.coef.zero_()
        model.intercept.zero_()
        # A class without an example here has no coefficients: switched off, or it would take probability.
        model.set_classes([on and i in present for i, on in enumerate(active)])
        if len(present) < 2:  # one class: the model answers it
            return {"C": None, "classes": [CLASSES[i] for i in present]}
        smallest = min(int((y == c).sum()) for c in present)
        if smallest >= 2:
            folds = StratifiedKFold(n_splits=min(5, smallest), shuffle=True, random_state=seed)
            regression = LogisticRegressionCV(Cs=list(LOGISTIC_CS), cv=folds, scoring="neg_log_loss", max_iter=3000)
        else:
            regression = LogisticRegression(C=1.0, max_iter=3000)
        angles = make_pipeline(
            SimpleImputer(strategy="mean", keep_empty_features=True),
            StandardScaler(),
            PolynomialFeatures(degree=2, include_bias=False),
            StandardScaler(),
        )
        features = angles
        if images is not None:
            x = np.hstack([x, np.asarray(images, dtype=np.float64)])
            image_columns = list(range(2, x.shape[1]))
            features = ColumnTransformer([("angles", angles, [0, 1]), ("image", StandardScaler(), image_columns)])
        pipeline = make_pipeline(features, regression)
        pipeline.fit(x, y)
        fitted = pipeline.steps[-1][1]
        if images is not None:
            if not isinstance(model, ContrastLogistic):
                raise TypeError("image features are fitted into a ContrastLogistic")
            fitted_angles, image_scaler = features.named_transformers_["angles"], features.named_transformers_["image"]
            model.image_mean.copy_(torch.as_tensor(image_scaler.mean_))
            model.image_scale.copy_(torch.as_tensor(image_scaler.scale_))
        else:
            fitted_angles = angles
        scaler, poly_scaler = fitted_angles.steps[1][1], fitted_angles.steps[3][1]
        model.mean.copy_(torch.as_tensor(scaler.mean_))
        model.scale.copy_(torch.as_tensor(scaler.scale_))
        model.poly_mean.copy_(torch.as_tensor(poly_scaler.mean_))
        model.poly_scale.copy_(torch.as_tensor(poly_scaler.scale_))
        coef, intercept = np.asarray(fitted.coef_), np.asarray(fitted.intercept_)
        if len(fitted.classes_) == 2:  # binary: sklearn keeps one row, the logit of the second class
            coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
        for row, cls in enumerate(fitted.classes_):
            model.coef[int(cls)] = torch.as_tensor(coef[row])
            model.intercept[int(cls)] = float(intercept[row])
        chosen = getattr(fitted, "C_", [1.0])
        return {"C": float(np.ravel(chosen)[0]), "classes": [CLASSES[i] for i in present]}


def _nll(probs: np.ndarray, truth: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(probs[np.arange(len(truth)), truth], 1e-12, 1.0))))


class VesselTask(TaskSpec):
    name = "vessel_type"
    classes = CLASSES
    families = ("contrast_logreg", "fused_vessel", "metadata_logreg", "r2plus1d", "metadata_mlp")
    score_keys = frozenset({"entropy", "margin", "least_confidence", "crop_spread", "bald"})
    params_class: ClassVar[type[Hyperparameters]] = VesselParams
    primary_metric = "macro_f1"
    baseline_name = "majority class"

    @classmethod
    def strategy_problem(cls, strategy: str, params: Hyperparameters) -> str | None:
        """BALD needs Monte Carlo dropout passes at scoring time."""
        if strategy == "bald" and getattr(params, "mc_dropout_passes", 0) < 2:
            return "bald needs Monte Carlo dropout: set training_hparams.mc_dropout_passes to 2 or more"
        return super().strategy_problem(strategy, params)

    @classmethod
    def target_from_payload(cls, payload: dict[str, Any], context: dict[str, Any] | None = None) -> int | None:
        vessel = payload.get("vessel")
        return CLASSES.index(vessel) if vessel in CLASSES else None  # "unusable" runs never train

    @classmethod
    def choose_family(cls, n_labelled: int, params: Hyperparameters) -> str:
        assert isinstance(params, VesselParams)
        return "fused_vessel" if n_labelled >= params.pixel_model_min_labels else "contrast_logreg"

    @classmethod
    def target_from_output(cls, output: dict[str, Any]) -> int | None:
        """Return the class a stored prediction chose, as a training target."""
        vessel = output.get("vessel")
        return CLASSES.index(vessel) if vessel in CLASSES else None

    def model_kwargs(self, family: str, params: Hyperparameters) -> dict[str, Any]:
        assert isinstance(params, VesselParams)
        if family == "fused_vessel":
            return {"num_classes": len(CLASSES), "width": params.width, "members": params.ensemble}
        if family in PIXEL_FAMILIES:
            return {"num_classes": len(CLASSES), "width": params.width}
        return {"num_classes": len(CLASSES)}

    def usable(self, family: str, example: Example) -> bool:
        return family not in GEOMETRY_FAMILIES or ref_as(example.ref, CineRef).geometry is not None

    def fits_directly(self, family: str) -> bool:
        return family in LINEAR_FAMILIES

    def fitted_params(self, params: Hyperparameters, train: Sequence[Example]) -> Hyperparameters:
        """Keep the project's classes that have a human or pseudo training example; refuse when none has."""
        assert isinstance(params, VesselParams)
        seen = {e.target for e in train}
        kept = [c for c in params.class_names if CLASSES.index(c) in seen]
        if not kept:
            raise TrainingError(f"no training example of the project's classes ({params.classes})")
        return dataclasses.replace(params, classes=",".join(kept))

    def in_scope(self, params: Hyperparameters, example: Example) -> bool:
        assert isinstance(params, VesselParams)
        return params.active[example.target]

    def prepare(self, model: nn.Module, family: str, train: Sequence[Example], params: Hyperparameters) -> None:
        assert isinstance(params, VesselParams)
        assert isinstance(model, ClassHead)  # every vessel family (see learning.models)
        model.set_classes(params.active)
        if family == "metadata_mlp":
            assert isinstance(model, MetadataMLP)
            geometry = torch.tensor([ref_as(e.ref, CineRef).geometry for e in train], dtype=torch.float32)
            std = geometry.std(dim=0, unbiased=False) if len(train) > 1 else torch.ones(geometry.shape[1])
            model.set_normalisation(geometry.mean(dim=0), torch.clamp(std, min=1e-3))
        elif family == "metadata_logreg":  # `train` holds the validation runs too (see fits_directly)
            assert isinstance(model, QuadraticLogistic)
            fit_quadratic(model, [e for e in train if not e.is_pseudo] or train, params.active)
        elif family in ("contrast_logreg", "fused_vessel"):  # human labels only: pseudo-labels are its own
            examples = [e for e in train if not e.is_pseudo] or list(train)
            images = np.stack([self.contrast(ref_as(e.ref, CineRef)) for e in examples])
            regression = model.meta if isinstance(model, FusedVessel) else model
            assert isinstance(regression, ContrastLogistic)
            fit_quadratic(regression, examples, params.active, images=images)

    def initialise(self, model: nn.Module, family: str, state: dict[str, torch.Tensor]) -> int:
        """Start each video network's R(2+1)D encoder from `state` (e.g. a frame-interpolation model's
        `encoder_state`): all of its ``features.*`` tensors, same names and shapes, or nothing at all. The heads
        and the regression keep their own start."""
        if family not in PIXEL_FAMILIES:
            return 0
        videos = list(model.videos) if isinstance(model, FusedVessel) else [model]
        loaded = 0
        for video in videos:
            encoder = {name: tensor for name, tensor in video.state_dict().items() if name.startswith("features.")}
            fits = set(encoder) == {name for name in state if name.startswith("features.")} and all(
                state[name].shape == tensor.shape for name, tensor in encoder.items()
            )
            if not fits:  # another width or depth: the encoder is not this network's, so none of it is loaded
                return 0
            video.load_state_dict({name: state[name] for name in encoder}, strict=False)
            loaded += len(encoder)
        return loaded

    # --- pixels
    def contrast(self, ref: CineRef) -> np.ndarray:
        """Return the run's contrast descriptor (`contrast_features`), computed once per job."""
        return self.cached(
            (ref.path, "contrast"),
            lambda: self.derived(
                ref.path, "contrast.v1", lambda: contrast_features(read_cine(str(self.resolve(ref.path))))
            ),
        )

    def linear_inputs(self, refs: Sequence[CineRef], device: torch.device) -> torch.Tensor:
        """Return `ContrastLogistic`'s input: each run's geometry (NaN where unrecorded), then its descriptor."""
        images = torch.from_numpy(np.stack([self.contrast(ref) for ref in refs])).to(device)
        return torch.cat([self._geometry(refs, device), images], dim=1)

    def vector_inputs(self, family: str, refs: Sequence[CineRef], device: torch.device) -> torch.Tensor:
        """Return the input of a family that reads one vector per run (geometry, or geometry + descriptor)."""
        return self.linear_inputs(refs, device) if family == "contrast_logreg" else self._geometry(refs, device)

    def frames(self, ref: CineRef, size: int) -> torch.Tensor:
        """Return the run resized to size² as a (frames, size, size) uint8 tensor, decoded once (TaskSpec.derived)."""

        def decode() -> np.ndarray:
            frames = torch.from_numpy(read_cine(str(self.resolve(ref.path))))
            resized = F.interpolate(frames[:, None], size=(size, size), mode="area")[:, 0]
            return (resized * 255).round().to(torch.uint8).numpy()

        return self.cached(
            (ref.path, size), lambda: torch.from_numpy(self.derived(ref.path, f"frames{size}.v1", decode))
        )

    def window(
        self, frames: torch.Tensor, params: VesselParams, rng: np.random.Generator, step: int | None = None
    ) -> torch.Tensor:
        """Return one random temporal window (1, clip_frames, size, size), zero-padded at the end if short."""
        step = step or params.frame_step
        span = (params.clip_frames - 1) * step + 1
        latest = max(frames.shape[0] - span, 0)
        start = int(rng.integers(0, latest + 1))
        clip = frames[start : start + span : step].float() / 255.0
        clip = (clip - 0.5) / 0.25
        missing = params.clip_frames - clip.shape[0]
        if missing > 0:
            clip = torch.cat([clip, clip.new_zeros((missing, *clip.shape[1:]))])
        return clip[None]

    def batch(self, family, examples, params, rng, train):
        assert isinstance(params, VesselParams)
        targets = torch.tensor([e.target for e in examples], dtype=torch.long)
        if family in VECTOR_FAMILIES:
            return (self.vector_inputs(family, [e.ref for e in examples], torch.device("cpu")),), targets
        clips = []
        for example in examples:
            frames = self.frames(example.ref, params.size)
            if train and params.augment:
                step = max(1, int(round(params.frame_step * rng.uniform(0.5, 1.5))))
                clip = self.geometric_jitter(self.window(frames, params, rng, step), rng)
            else:
                clip = self.window(frames, params, rng)
            if train:  # brightness / contrast jitter; the C-arm view itself is the signal, so no flips
                clip = clip * float(rng.uniform(0.85, 1.15)) + float(rng.uniform(-0.2, 0.2))
            clips.append(clip)
        return (torch.stack(clips),), targets

    @staticmethod
    def geometric_jitter(clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Rotate, scale and shift every frame of a (1, T, H, W) clip alike (small table and zoom changes)."""
        angle = math.radians(float(rng.uniform(-10, 10)))
        scale = float(rng.uniform(0.85, 1.15))
        shift = rng.uniform(-0.1, 0.1, 2)
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        theta = torch.tensor([[cos, -sin, shift[0]], [sin, cos, shift[1]]], dtype=torch.float32)
        frames = clip[0][:, None]  # (T, 1, H, W)
        grid = F.affine_grid(theta.expand(frames.shape[0], 2, 3), list(frames.shape), align_corners=False)
        background = frames.amin(dim=(1, 2, 3), keepdim=True)  # pad with each frame's darkest value
        moved = F.grid_sample(frames - background, grid, align_corners=False, padding_mode="zeros") + background
        return moved[:, 0][None]

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, params: Hyperparameters | None = None) -> torch.Tensor:
        if logits.ndim == 3:  # an ensemble: each member learns on its own, their losses averaged
            return torch.stack([F.cross_entropy(member, targets) for member in logits]).mean()
        return F.cross_entropy(logits, targets)

    # --- scoring
    def _geometry(self, refs: Sequence[CineRef], device: torch.device) -> torch.Tensor:
        """Return the refs' geometry; a run without recorded angles gets NaN rows (its angle model abstains)."""
        rows = [ref.geometry if ref.geometry is not None else (math.nan,) * 4 for ref in refs]
        return torch.tensor(rows, dtype=torch.float32, device=device)

    def member_outputs(self, model, family, refs, params: VesselParams, rng):
        """Return raw (before temperature and stacking) outputs: video (items, crops, classes) log-probs or None,
        angle-model (items, classes) log-probs or None, and (items, features) embeddings."""
        device = next(model.parameters()).device
        if family in VECTOR_FAMILIES:
            features = model.embed(self.vector_inputs(family, refs, device))
            logits = (
                model.net[-1](features) + model.logit_offset
                if family == "metadata_mlp"
                else (features @ model.coef.T + model.intercept + model.logit_offset)
            )
            return None, torch.log_softmax(logits, dim=1), features
        videos = list(model.videos) if family == "fused_vessel" else [model]
        clips = torch.stack(
            [self.window(self.frames(ref, params.size), params, rng) for ref in refs for _ in range(params.crops)]
        ).to(device)
        members, embeddings = [], None
        for video in videos:  # an ensemble's members count as more crops: their spread is uncertainty too
            features = video.pool(video.features(clips)).flatten(1)
            logits = video.classifier(features) + video.logit_offset
            members.append(torch.log_softmax(logits, dim=1).reshape(len(refs), params.crops, len(CLASSES)))
            if embeddings is None:
                embeddings = features.reshape(len(refs), params.crops, -1).mean(dim=1)
        crops = torch.cat(members, dim=1)
        meta = None
        if family == "fused_vessel":
            regression = model.meta
            logits = regression.embed(self.linear_inputs(refs, device)) @ regression.coef.T + regression.intercept
            meta = torch.log_softmax(logits + regression.logit_offset, dim=1)
        return crops, meta, embeddings

    @staticmethod
    def combine(model, family, crops: torch.Tensor | None, meta: torch.Tensor | None) -> torch.Tensor:
        """Return (items, crops, classes) probabilities after stacking and temperature."""
        if crops is None:  # one linear or geometry model: log-probabilities already carry the class offsets
            return torch.softmax(meta / model.temperature, dim=1)[:, None, :]
        if family == "fused_vessel":
            video = torch.log(torch.softmax(crops, dim=2).mean(dim=1))  # average the crops' probabilities first
            return torch.softmax(model.combine(video, meta), dim=1)[:, None, :]
        return torch.softmax(crops / model.temperature, dim=2)

    def score_batch(self, model, family, refs, params, rng):
        assert isinstance(params, VesselParams)
        crops, meta, embeddings = self.member_outputs(model, family, refs, params, rng)
        probs = self.combine(model, family, crops, meta).cpu().numpy()
        embeddings = embeddings.cpu().numpy()
        spread = None
        if crops is not None:
            spread = torch.softmax(crops / model_temperature(model), dim=2).cpu().numpy()
        mc = self._mc_dropout(model, family, refs, params, rng) if params.mc_dropout_passes > 1 else None
        scores = []
        for i, ref in enumerate(refs):
            mean = probs[i].mean(axis=0)
            detail = {
                "entropy": float(uncertainty.entropy(mean)),
                "margin": float(uncertainty.margin(mean)),
                "least_confidence": float(uncertainty.least_confidence(mean)),
                "crop_spread": float(uncertainty.crop_spread(spread[i])) if spread is not None else 0.0,
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
                        "crops": int(spread.shape[1]) if spread is not None else 1,
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
                if family in VECTOR_FAMILIES:
                    inputs = self.vector_inputs(family, refs, next(model.parameters()).device)
                else:
                    inputs = torch.stack([self.window(self.frames(ref, params.size), params, rng) for ref in refs])
                logits = model(inputs.to(next(model.parameters()).device))
                probs = torch.softmax(logits, dim=-1)
                passes.append((probs.mean(dim=0) if probs.ndim == 3 else probs).cpu().numpy())
        finally:
            for module in dropouts:
                module.eval()
        return np.stack(passes, axis=1)

    # --- calibration and stacking, on validation only
    def calibrate(self, model, family, validation, params, seed):
        """Fit the temperature (and for the fused model the stacking weights) on the validation runs.

        Below `min_validation` runs nothing is fitted: the fused model stays the angle model alone.
        """
        assert isinstance(params, VesselParams)
        if len(validation) < params.min_validation:
            if family == "fused_vessel":  # no evidence that the pixels help: the angle model alone
                model.stack.copy_(torch.tensor([0.0, 1.0]))
            return {"fitted": False, "reason": f"{len(validation)} validation runs (need {params.min_validation})"}
        model.eval()
        rng = np.random.default_rng(seed)
        crops_all, meta_all = [], []
        with torch.no_grad():
            for start in range(0, len(validation), params.batch_size):
                chunk = [e.ref for e in validation[start : start + params.batch_size]]
                crops, meta, _ = self.member_outputs(model, family, chunk, params, rng)
                crops_all.append(crops)
                meta_all.append(meta)
        truth = torch.tensor([e.target for e in validation], dtype=torch.long)
        result: dict[str, Any] = {"fitted": True, "n": len(validation)}
        if family == "fused_vessel":
            crops = torch.cat(crops_all)
            video = torch.log(torch.softmax(crops, dim=2).mean(dim=1))
            meta = torch.cat(meta_all)
            result |= self._fit_stack(model, video, meta, truth, params)
            # The spread between the ensemble's members on validation (what averaging them smooths out).
            result["member_log_loss"] = [
                _nll(torch.softmax(member, dim=2).mean(dim=1).numpy(), truth.numpy())
                for member in crops.split(params.crops, dim=1)
            ]
            return result
        logits = torch.cat(crops_all) if crops_all[0] is not None else torch.cat(meta_all)
        result["temperature"] = self._fit_temperature(model, logits, truth)
        return result

    @staticmethod
    def _fit_temperature(model, log_probs: torch.Tensor, truth: torch.Tensor) -> float:
        """Choose the temperature minimising validation log-loss (log-spaced grid; crops averaged after it)."""
        best, best_loss = 1.0, math.inf
        for temperature in np.geomspace(0.05, 20.0, 121):
            scaled = torch.softmax(log_probs / float(temperature), dim=-1)
            probs = scaled.mean(dim=1) if scaled.ndim == 3 else scaled
            loss = _nll(probs.numpy(), truth.numpy())
            if loss < best_loss - 1e-9:
                best, best_loss = float(temperature), loss
        model.set_temperature(best)
        return best

    @staticmethod
    def _fit_stack(model, video: torch.Tensor, meta: torch.Tensor, truth: torch.Tensor, params) -> dict[str, Any]:
        """Fit non-negative weights of the two members' log-probabilities and a class bias by validation log-loss."""
        active = torch.tensor(params.active)
        raw = torch.zeros(2, requires_grad=True)  # softplus(0) ≈ 0.69 each to start
        bias = torch.zeros(len(CLASSES), requires_grad=True)
        optimiser = torch.optim.LBFGS([raw, bias], lr=0.5, max_iter=200)
        safe_video = torch.nan_to_num(video, neginf=-30.0).clamp(min=-30.0)
        safe_meta = torch.nan_to_num(meta, neginf=-30.0).clamp(min=-30.0)

        def closure():
            optimiser.zero_grad()
            weights = F.softplus(raw)
            mixed = weights[0] * safe_video + weights[1] * safe_meta + bias
            mixed = mixed.masked_fill(~active, -1e4)
            loss = F.cross_entropy(mixed, truth) + 1e-2 * (bias**2).sum()
            loss.backward()
            return loss

        optimiser.step(closure)
        with torch.no_grad():
            weights = F.softplus(raw)
            model.stack.copy_(weights)
            model.stack_bias.copy_(bias * active)

            def log_loss(mixed):
                return _nll(torch.softmax(mixed.masked_fill(~active, -1e4), dim=1).numpy(), truth.numpy())

            fused = weights[0] * safe_video + weights[1] * safe_meta + bias
            return {
                "video_weight": float(weights[0]),
                "angle_weight": float(weights[1]),
                "validation_log_loss": {
                    "video": log_loss(safe_video),
                    "angles": log_loss(safe_meta),
                    "fused": log_loss(fused),
                },
            }

    # --- evaluation
    def metric_rows(self, scores: Sequence[ItemScore], examples: Sequence[Example]) -> tuple[np.ndarray, ...]:
        by_item = {s.item_id: s for s in scores}
        truth = np.array([e.target for e in examples], dtype=int)
        predicted = np.array([CLASSES.index(by_item[e.ref.item_id].output["vessel"]) for e in examples], dtype=int)
        return truth, predicted

    def metric_value(self, *rows: np.ndarray) -> float:
        truth, predicted = rows
        return metrics.macro_f1(truth, predicted, range(len(CLASSES)))

    def metric_strata(self, examples: Sequence[Example]) -> np.ndarray:
        return np.array([e.target for e in examples], dtype=int)

    proper_score = "log loss"

    def item_losses(self, scores: Sequence[ItemScore], examples: Sequence[Example]) -> np.ndarray:
        """Each run's negative log-probability of its true class (probabilities floored at 1e-6)."""
        by_item = {s.item_id: s for s in scores}
        right = [by_item[e.ref.item_id].output["probabilities"][CLASSES[e.target]] for e in examples]
        return -np.log(np.clip(np.asarray(right, dtype=float), 1e-6, 1.0))

    def baseline_scores(self, train: Sequence[Example], refs: Sequence[ItemRef]) -> list[ItemScore]:
        """The majority class of the training labels, with the training class frequencies as probabilities."""
        counts = np.bincount([e.target for e in train], minlength=len(CLASSES)).astype(float)
        probs = counts / counts.sum() if counts.sum() else np.full(len(CLASSES), 1 / len(CLASSES))
        best = int(probs.argmax())
        output = {
            "probabilities": dict(zip(CLASSES, as_float_list(probs), strict=True)),
            "vessel": CLASSES[best],
            "family": "majority",
        }
        return [
            ItemScore(
                item_id=ref.item_id, output=dict(output), uncertainty=0.0, detail={}, confidence=float(probs[best])
            )
            for ref in refs
        ]

    def evaluate(self, scores: Sequence[ItemScore], examples: Sequence[Example]) -> dict[str, Any]:
        by_item = {s.item_id: s for s in scores}
        kept = [e for e in examples if e.ref.item_id in by_item]
        pairs = [(e.target, by_item[e.ref.item_id]) for e in kept]
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
        groups = example_groups(kept)
        low, high = metrics.bootstrap_ci(
            lambda t, p: metrics.macro_f1(t, p, CLASSES), truth, predicted, n_boot=200, groups=groups
        )[1:]
        acc_low, acc_high = metrics.bootstrap_ci(metrics.accuracy, truth, predicted, n_boot=200, groups=groups)[1:]
        indices = np.array([CLASSES.index(t) for t in truth])
        ece, ece_low, ece_high = metrics.bootstrap_ci(
            metrics.expected_calibration_error, indices, probs, n_boot=200, groups=groups
        )
        return {
            "macro_f1": metrics.macro_f1(truth, predicted, CLASSES),
            "macro_f1_ci": [low, high],
            "accuracy": metrics.accuracy(truth, predicted),
            "accuracy_ci": [acc_low, acc_high],
            "auc": auc,
            "ece": ece,
            "ece_ci": [ece_low, ece_high],
            "f1": {name: value for name, value in per_class.items()},
        }


def model_temperature(model: nn.Module) -> float:
    return float(getattr(model, "temperature", torch.ones(())))
