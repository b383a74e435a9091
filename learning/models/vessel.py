"""Task 1 networks: LCA/RCA vessel type from a cine clip, and a metadata-only cold-start prior."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

OFF_LOGIT = -1.0e4  # added to a switched-off class's logit: exp() of it is 0 in float32
ANGLE_FEATURES = 2  # the quadratic model reads the two C-arm angles (the first two geometry fields)
# The contrast image's descriptor (learning.tasks.vessel.contrast_features): HOG on a 64² image, 4 × 4 cells of
# 8 unsigned orientations each, one block over all cells (L2-normalised as a whole).
CONTRAST_SIZE = 64
CONTRAST_CELLS = 4
CONTRAST_ORIENTATIONS = 8
CONTRAST_FEATURES = CONTRAST_CELLS * CONTRAST_CELLS * CONTRAST_ORIENTATIONS

GEOMETRY_FIELDS = (
    "PositionerPrimaryAngle",
    "PositionerSecondaryAngle",
    "DistanceSourceToDetector",
    "DistanceSourceToPatient",
)


def pad_clip(clip: torch.Tensor, frames: int) -> torch.Tensor:
    """Return ``clip`` (..., T, H, W) zero-padded at the end of the time axis to at least ``frames`` frames."""
    missing = frames - clip.shape[-3]
    if missing <= 0:
        return clip
    padding = clip.new_zeros((*clip.shape[:-3], missing, *clip.shape[-2:]))
    return torch.cat([clip, padding], dim=-3)


class Conv2Plus1d(nn.Sequential):
    """One factorised 3D convolution: spatial 1×3×3, then temporal 3×1×1, each with batch norm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, spatial_stride: int = 1) -> None:
        super().__init__(
            nn.Conv3d(
                in_channels,
                out_channels,
                kernel_size=(1, 3, 3),
                stride=(1, spatial_stride, spatial_stride),
                padding=(0, 1, 1),
                bias=False,
            ),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(out_channels, out_channels, kernel_size=(3, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
        )


class ClassHead(nn.Module):
    """Logit adjustments every vessel model saves with its weights: classes switched off, and a temperature.

    A class the project does not train (a lead dropped it, or no training example has it) gets a large
    negative offset, so it is never predicted and takes no probability; the temperature (fitted on
    validation after training) divides the logits so that probabilities are calibrated.
    """

    logit_offset: torch.Tensor
    temperature: torch.Tensor

    def register_head(self, num_classes: int) -> None:
        self.register_buffer("logit_offset", torch.zeros(num_classes))
        self.register_buffer("temperature", torch.ones(()))

    def set_classes(self, active: Sequence[bool]) -> None:
        """Switch classes on and off (one flag per class, at least one on)."""
        flags = torch.as_tensor(list(active), dtype=torch.bool)
        if flags.shape != self.logit_offset.shape or not bool(flags.any()):
            raise ValueError(f"expected {self.logit_offset.shape[0]} class flags with at least one on")
        self.logit_offset.copy_(torch.where(flags, 0.0, OFF_LOGIT))

    def set_temperature(self, value: float) -> None:
        if not value > 0:
            raise ValueError("temperature must be positive")
        self.temperature.fill_(float(value))

    def adjust(self, logits: torch.Tensor) -> torch.Tensor:
        """Return logits with switched-off classes suppressed, divided by the temperature."""
        return (logits + self.logit_offset) / self.temperature


class R2Plus1DClassifier(ClassHead):
    """Small R(2+1)D video classifier; input (batch, channels, frames, H, W), output class logits.

    Time is never strided, so clips of any length (zero-padded short ones included) pass through;
    space is halved by each block after the first.
    """

    def __init__(self, num_classes: int = 3, in_channels: int = 1, width: int = 16, dropout: float = 0.2) -> None:
        super().__init__()
        self.features = nn.Sequential(
            Conv2Plus1d(in_channels, width, spatial_stride=2),
            Conv2Plus1d(width, width * 2, spatial_stride=2),
            Conv2Plus1d(width * 2, width * 4, spatial_stride=2),
            Conv2Plus1d(width * 4, width * 8, spatial_stride=2),
        )
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width * 8, num_classes)
        self.register_head(num_classes)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        if clip.ndim != 5:
            raise ValueError(f"expected a clip shaped (batch, channels, frames, H, W), got {tuple(clip.shape)}")
        pooled = self.pool(self.features(clip)).flatten(1)
        return self.adjust(self.classifier(self.dropout(pooled)))


class MetadataMLP(ClassHead):
    """Vessel type from the four C-arm geometry fields (``GEOMETRY_FIELDS`` order), standardised inside the model."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, num_features: int = len(GEOMETRY_FIELDS), num_classes: int = 3, hidden: int = 32) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("std", torch.ones(num_features))
        self.net = nn.Sequential(
            nn.Linear(num_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )
        self.register_head(num_classes)

    def set_normalisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the training set's per-feature mean and standard deviation (saved with the state dict)."""
        mean = torch.as_tensor(mean, dtype=self.mean.dtype)
        std = torch.as_tensor(std, dtype=self.std.dtype)
        if mean.shape != self.mean.shape or std.shape != self.std.shape:
            raise ValueError(f"mean and std must both have shape {tuple(self.mean.shape)}")
        if not torch.all(std > 0):
            raise ValueError("std must be positive for every feature (a constant feature carries no signal)")
        self.mean.copy_(mean)
        self.std.copy_(std)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Return the last hidden layer: the run's place in geometry space, for diversity-aware strategies."""
        return self.net[:-1]((features - self.mean) / self.std)

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        """Return class logits from `embed`'s output."""
        return self.adjust(self.net[-1](embedding))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(features))


class QuadraticLogistic(ClassHead):
    """Logistic regression on the two C-arm angles with quadratic terms, fitted by scikit-learn.

    The pipeline (standardise → degree-2 polynomial → standardise → logistic regression) is fitted outside
    (`learning.tasks.vessel.fit_quadratic`) and copied into buffers, so the weights file stays a plain tensor
    file and scoring runs in torch like every other family. Input: the four geometry fields; the first two
    (primary and secondary angle) are used.
    """

    POLY = 5  # a, b, a², ab, b²

    mean: torch.Tensor
    scale: torch.Tensor
    poly_mean: torch.Tensor
    poly_scale: torch.Tensor
    coef: torch.Tensor
    intercept: torch.Tensor

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(ANGLE_FEATURES))
        self.register_buffer("scale", torch.ones(ANGLE_FEATURES))
        self.register_buffer("poly_mean", torch.zeros(self.POLY))
        self.register_buffer("poly_scale", torch.ones(self.POLY))
        self.register_buffer("coef", torch.zeros(num_classes, self.POLY))
        self.register_buffer("intercept", torch.zeros(num_classes))
        self.register_head(num_classes)
        # A parameter-free model still needs a device to report: one dummy parameter, never trained.
        self.anchor = nn.Parameter(torch.zeros(()), requires_grad=False)

    def embed(self, geometry: torch.Tensor) -> torch.Tensor:
        """Return the standardised quadratic features (the run's place in angle space); a run without recorded
        angles (NaN) counts as the training mean, as the scikit-learn pipeline imputed it."""
        z = torch.nan_to_num((geometry[:, :ANGLE_FEATURES] - self.mean) / self.scale, nan=0.0)
        a, b = z[:, 0], z[:, 1]
        poly = torch.stack([a, b, a * a, a * b, b * b], dim=1)
        return (poly - self.poly_mean) / self.poly_scale

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.adjust(embedding @ self.coef.T + self.intercept)

    def forward(self, geometry: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(geometry))


class ContrastLogistic(QuadraticLogistic):
    """Logistic regression on the C-arm angles (quadratic terms) and the orientation histogram of the contrast image.

    The contrast image is where iodine darkened the run (see `learning.tasks.vessel.contrast_image`); its HOG
    descriptor says which way the filled vessels run in which part of the field: one trunk bending in a C or
    an L (RCA) or a left main splitting into two branches (LCA). Input: (runs, 4 + CONTRAST_FEATURES), the four
    geometry fields (NaN where a run recorded none: its angles count as the training mean) then the
    descriptor. Fitted by scikit-learn (`fit_quadratic` with image features) and copied into buffers.
    """

    image_mean: torch.Tensor
    image_scale: torch.Tensor

    def __init__(self, num_classes: int = 3, image_features: int = CONTRAST_FEATURES) -> None:
        super().__init__(num_classes)
        self.register_buffer("image_mean", torch.zeros(image_features))
        self.register_buffer("image_scale", torch.ones(image_features))
        self.register_buffer("coef", torch.zeros(num_classes, self.POLY + image_features))

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """Return the standardised features: five quadratic angle terms, then the image descriptor."""
        image = (inputs[:, len(GEOMETRY_FIELDS) :] - self.image_mean) / self.image_scale
        return torch.cat([super().embed(inputs[:, : len(GEOMETRY_FIELDS)]), image], dim=1)


class FusedVessel(ClassHead):
    """The video networks and the contrast-image regression (`ContrastLogistic`), stacked on validation.

    Training updates the video networks alone (`forward` returns their logits, and `stack` starts at video only
    so that validation picks the video's best epoch); the regression is fitted beforehand by scikit-learn and
    stays fixed. After training, `stack` (the weights of the video's and the regression's log-probabilities)
    and `stack_bias` are fitted on the validation split: a video network that does not help on validation gets
    weight 0, and with too little validation the fused model is the regression alone.
    """

    stack: torch.Tensor
    stack_bias: torch.Tensor

    def __init__(self, num_classes: int = 3, width: int = 16, dropout: float = 0.2, members: int = 3) -> None:
        super().__init__()
        if members < 1:
            raise ValueError("members must be at least 1")
        # Several video networks from different initialisations, averaged: less retrain-to-retrain variance.
        self.videos = nn.ModuleList(
            R2Plus1DClassifier(num_classes=num_classes, width=width, dropout=dropout) for _ in range(members)
        )
        self.meta = ContrastLogistic(num_classes=num_classes)
        # While training, the video alone (validation picks its best epoch); `stack` is fitted afterwards.
        self.register_buffer("stack", torch.tensor([1.0, 0.0]))
        self.register_buffer("stack_bias", torch.zeros(num_classes))
        self.register_head(num_classes)

    def set_classes(self, active: Sequence[bool]) -> None:
        super().set_classes(active)
        for video in self.videos:
            assert isinstance(video, R2Plus1DClassifier)  # the ModuleList holds nothing else
            video.set_classes(active)
        self.meta.set_classes(active)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        """Return every video member's logits, (members, batch, classes): each is trained on its own loss."""
        return torch.stack([video(clip) for video in self.videos])

    def combine(self, video_log_probs: torch.Tensor, meta_log_probs: torch.Tensor) -> torch.Tensor:
        """Return the fused logits from the two members' log-probabilities."""
        mixed = self.stack[0] * video_log_probs + self.stack[1] * meta_log_probs + self.stack_bias
        return self.adjust(torch.nan_to_num(mixed, neginf=OFF_LOGIT))
