"""Task 3 network: coronary territory (LAD, RCA, LCX) logits from rest and stress polar maps."""

from __future__ import annotations

import torch
from torch import nn

from learning.domain import TERRITORIES

FUSIONS = ("early", "late")
HEAD_WIDTH = 128
HEAD_DROPOUT = 0.3


def _encoder(in_channels: int, width: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    previous = in_channels
    for out_channels in (width, width * 2, width * 4):
        layers += [
            nn.Conv2d(previous, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        ]
        previous = out_channels
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


class PolarMapCNN(nn.Module):
    """Per-territory logits (``TERRITORIES`` order) from rest and stress maps (batch, 1, H, W) and clinical features.

    ``early`` fusion stacks rest and stress as two channels of one encoder; ``late`` fusion encodes each
    map in its own branch and concatenates the two vectors. Clinical features (age, sex, weight, height)
    join before the two dense-128 layers. The paper's L2 0.01 belongs in the optimiser's weight decay.
    """

    def __init__(self, fusion: str = "early", clinical_features: int = 4, width: int = 16) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; expected one of {', '.join(FUSIONS)}")
        self.fusion = fusion
        self.clinical_features = clinical_features
        if fusion == "early":
            self.encoder = _encoder(2, width)
            image_features = width * 4
        else:
            self.rest_encoder = _encoder(1, width)
            self.stress_encoder = _encoder(1, width)
            image_features = width * 8
        self.head = nn.Sequential(
            nn.Linear(image_features + clinical_features, HEAD_WIDTH),
            nn.ReLU(inplace=True),
            nn.Dropout(HEAD_DROPOUT),
            nn.Linear(HEAD_WIDTH, HEAD_WIDTH),
            nn.ReLU(inplace=True),
            nn.Dropout(HEAD_DROPOUT),
            nn.Linear(HEAD_WIDTH, len(TERRITORIES)),
        )

    def embed(self, rest: torch.Tensor, stress: torch.Tensor) -> torch.Tensor:
        """Return the image features the head sees (also the embedding diversity-aware strategies use)."""
        if self.fusion == "early":
            return self.encoder(torch.cat([rest, stress], dim=1))
        return torch.cat([self.rest_encoder(rest), self.stress_encoder(stress)], dim=1)

    def forward(self, rest: torch.Tensor, stress: torch.Tensor, clinical: torch.Tensor | None = None) -> torch.Tensor:
        return self.classify(self.embed(rest, stress), clinical)

    def classify(self, features: torch.Tensor, clinical: torch.Tensor | None = None) -> torch.Tensor:
        """Return territory logits from image features and clinical features."""
        if self.clinical_features:
            if clinical is None or clinical.shape[-1] != self.clinical_features:
                raise ValueError(f"expected {self.clinical_features} clinical features per patient")
            features = torch.cat([features, clinical.to(features.dtype)], dim=1)
        return self.head(features)
