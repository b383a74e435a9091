"""Cine frame interpolation (seed 001): the middle frame of a run from the frames either side of it.

A compact flow-based network. The encoder is the vessel-type video model's R(2+1)D stack (the same blocks,
widths and strides as `R2Plus1DClassifier.features`) run over the two-frame clip (previous, next), so a trained
interpolator's encoder initialises the vessel model (`encoder_state`). A U-Net decoder with skip connections
predicts, at full resolution, a flow to each input frame, a blend weight and a residual:

    middle = α · warp(previous, flow₀) + (1 − α) · warp(next, flow₁) + residual

The head starts at zero, so an untrained network is linear blending; training only has to learn the motion.
Frames are (batch, 1, H, W) floats in [0, 1]; any size works (padded to a multiple of 16 inside).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from learning.models.vessel import Conv2Plus1d

STRIDE = 16  # four stride-2 blocks
CHARBONNIER_EPSILON = 1e-4  # the seed paper's ε


class _Up(nn.Module):
    """Upsample ×2, join the skip connection, two 3×3 convolutions."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels + skip_channels, out_channels, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], dim=1))


def warp(frame: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample `frame` (B, C, H, W) at each pixel plus `flow` (B, 2, H, W; x then y, in pixels), border-clamped."""
    _, _, height, width = frame.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, device=frame.device, dtype=frame.dtype),
        torch.arange(width, device=frame.device, dtype=frame.dtype),
        indexing="ij",
    )
    x = (xs + flow[:, 0]) * (2.0 / max(width - 1, 1)) - 1.0
    y = (ys + flow[:, 1]) * (2.0 / max(height - 1, 1)) - 1.0
    grid = torch.stack([x, y], dim=-1)
    return F.grid_sample(frame, grid, mode="bilinear", padding_mode="border", align_corners=True)


class FrameInterpolator(nn.Module):
    """Predict the frame half-way between `previous` and `following` (each (B, 1, H, W) in [0, 1])."""

    def __init__(self, width: int = 16, max_flow: float = 8.0) -> None:
        super().__init__()
        self.width, self.max_flow = width, max_flow
        # The vessel model's encoder, block for block (see R2Plus1DClassifier): `encoder_state` relies on it.
        self.features = nn.Sequential(
            Conv2Plus1d(1, width, spatial_stride=2),
            Conv2Plus1d(width, width * 2, spatial_stride=2),
            Conv2Plus1d(width * 2, width * 4, spatial_stride=2),
            Conv2Plus1d(width * 4, width * 8, spatial_stride=2),
        )
        # Each encoder level is (B, C, 2, h, w); its two time steps are joined as channels for the decoder.
        self.up3 = _Up(width * 16, width * 8, width * 4)
        self.up2 = _Up(width * 4, width * 4, width * 2)
        self.up1 = _Up(width * 2, width * 2, width)
        self.up0 = _Up(width, 2, width)
        # flow to the previous frame (2), flow to the next frame (2), blend weight logit (1), residual (1)
        self.head = nn.Conv2d(width, 6, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)  # type: ignore[arg-type]  # the head is built with a bias

    def architecture(self) -> dict[str, float]:
        """The constructor's arguments, stored with the weights."""
        return {"width": self.width, "max_flow": self.max_flow}

    def forward(self, previous: torch.Tensor, following: torch.Tensor) -> torch.Tensor:
        if previous.shape != following.shape or previous.ndim != 4 or previous.shape[1] != 1:
            raise ValueError(
                f"expected two frames shaped (batch, 1, H, W), got {tuple(previous.shape)} and {tuple(following.shape)}"
            )
        height, width = previous.shape[-2:]
        pad_h, pad_w = (-height) % STRIDE, (-width) % STRIDE
        frames = torch.cat([previous, following], dim=1)
        if pad_h or pad_w:
            frames = F.pad(frames, (0, pad_w, 0, pad_h), mode="replicate")
        x = frames.unsqueeze(1)  # (B, 1, 2, H, W): a two-frame clip, as the vessel model sees its clips
        levels = []
        for block in self.features:
            x = block(x)
            levels.append(x.flatten(1, 2))  # (B, C·2, h, w)
        y = self.up3(levels[3], levels[2])
        y = self.up2(y, levels[1])
        y = self.up1(y, levels[0])
        y = self.up0(y, frames)
        out = self.head(y)
        flow0 = torch.tanh(out[:, 0:2]) * self.max_flow
        flow1 = torch.tanh(out[:, 2:4]) * self.max_flow
        alpha = torch.sigmoid(out[:, 4:5])
        residual = out[:, 5:6]
        middle = alpha * warp(frames[:, 0:1], flow0) + (1 - alpha) * warp(frames[:, 1:2], flow1) + residual
        return middle[..., :height, :width].clamp(0.0, 1.0)

    def encoder_state(self) -> dict[str, torch.Tensor]:
        """The encoder's weights under `R2Plus1DClassifier`'s names (``features.…``): load with strict=False."""
        return {f"features.{name}": value.detach().clone() for name, value in self.features.state_dict().items()}


def charbonnier(prediction: torch.Tensor, target: torch.Tensor, epsilon: float = CHARBONNIER_EPSILON) -> torch.Tensor:
    """The seed paper's reconstruction loss: mean of sqrt((x − y)² + ε²)."""
    return torch.sqrt((prediction - target) ** 2 + epsilon**2).mean()


class StructureFeatures(nn.Module):
    """A fixed (untrained) multi-scale filter bank: image gradients and a Laplacian at three scales.

    The seed paper's structure term compares conv4 features of an ImageNet ResNet; no pretrained weights are
    available offline, so the feature term here compares vessel-edge responses, which is what that term is for
    (sharp vessel boundaries rather than blurred ones).
    """

    kernels: torch.Tensor

    def __init__(self, scales: int = 3) -> None:
        super().__init__()
        sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 4.0
        laplacian = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]) / 4.0
        self.register_buffer("kernels", torch.stack([sobel_x, sobel_x.T, laplacian])[:, None])
        self.scales = scales

    def forward(self, frames: torch.Tensor) -> list[torch.Tensor]:
        responses = []
        x = frames
        for scale in range(self.scales):
            if scale:
                x = F.avg_pool2d(x, 2)
            responses.append(F.conv2d(x, self.kernels, padding=1))
        return responses


def interpolation_loss(
    prediction: torch.Tensor, target: torch.Tensor, features: StructureFeatures, feature_weight: float = 0.5
) -> torch.Tensor:
    """Charbonnier reconstruction plus the structure term (Charbonnier on the filter-bank responses)."""
    loss = charbonnier(prediction, target)
    if feature_weight:
        pairs = zip(features(prediction), features(target), strict=True)
        loss = loss + feature_weight * sum(charbonnier(p, t) for p, t in pairs) / features.scales
    return loss
