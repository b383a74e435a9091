"""Task 1 networks: LCA/RCA vessel type from a cine clip, and a metadata-only cold-start prior."""

from __future__ import annotations

import torch
from torch import nn

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


class R2Plus1DClassifier(nn.Module):
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

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        if clip.ndim != 5:
            raise ValueError(f"expected a clip shaped (batch, channels, frames, H, W), got {tuple(clip.shape)}")
        pooled = self.pool(self.features(clip)).flatten(1)
        return self.classifier(self.dropout(pooled))


class MetadataMLP(nn.Module):
    """Vessel type from the four C-arm geometry fields (``GEOMETRY_FIELDS`` order), standardised inside the model."""

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
        return self.net[-1](embedding)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(features))
