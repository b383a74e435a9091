"""Task 2 network: U-Net for calcium masks on intravascular OCT frames, and its loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _double_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    padding = kernel_size // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, kernel_size, padding=padding, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """U-Net returning one-channel mask logits (apply a sigmoid for probabilities).

    With ``depth=4`` and ``base=16`` the down path has 16 → 128 feature maps with 5×5 kernels
    (400² → 50² before the bottleneck) and the up path 3×3 kernels, as in the OCT paper. Inputs whose
    sides are not multiples of ``2**depth`` are zero-padded internally and the logits cropped back.
    """

    def __init__(self, in_channels: int = 3, base: int = 16, depth: int = 4, threshold: float = 0.5) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.depth = depth
        # How a probability map becomes a mask, saved with the weights: pixels at or above `threshold`, then
        # connected regions smaller than `min_area` (a fraction of the frame) dropped. Both are fitted on the
        # validation frames after training (`OctTask.calibrate`).
        self.register_buffer("threshold", torch.tensor(float(threshold)))
        self.register_buffer("min_area", torch.zeros(()))
        widths = [base * 2**level for level in range(depth)]
        self.down = nn.ModuleList()
        previous = in_channels
        for width in widths:
            self.down.append(_double_conv(previous, width, kernel_size=5))
            previous = width
        self.bottleneck = _double_conv(previous, previous * 2, kernel_size=3)
        previous *= 2
        self.upsample = nn.ModuleList()
        self.up = nn.ModuleList()
        for width in reversed(widths):
            self.upsample.append(nn.ConvTranspose2d(previous, width, kernel_size=2, stride=2))
            self.up.append(_double_conv(width * 2, width, kernel_size=3))
            previous = width
        self.head = nn.Conv2d(previous, 1, kernel_size=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        multiple = 2**self.depth
        x = F.pad(image, (0, -width % multiple, 0, -height % multiple))
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for upsample, block, skip in zip(self.upsample, self.up, reversed(skips), strict=True):
            x = block(torch.cat([upsample(x), skip], dim=1))
        return self.head(x)[..., :height, :width]


def bce_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, dice_weight: float = 1.0, smooth: float = 1.0, pos_weight: float = 1.0
) -> torch.Tensor:
    """Return binary cross-entropy (calcium pixels weighted `pos_weight`) plus ``dice_weight`` × (1 − soft Dice),
    Dice taken per image then averaged."""
    target = target.to(logits.dtype)
    weight = None if pos_weight == 1.0 else torch.tensor(float(pos_weight), dtype=logits.dtype, device=logits.device)
    bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight)
    if dice_weight == 0:
        return bce
    probabilities = torch.sigmoid(logits).flatten(1)
    truth = target.flatten(1)
    overlap = (probabilities * truth).sum(dim=1)
    dice = (2 * overlap + smooth) / (probabilities.sum(dim=1) + truth.sum(dim=1) + smooth)
    return bce + dice_weight * (1 - dice.mean())
