"""The networks the platform trains, found by family name."""

from __future__ import annotations

from torch import nn

from learning.models.device import pick_device
from learning.models.oct import UNet, bce_dice_loss
from learning.models.spect import PolarMapCNN
from learning.models.vessel import (
    ContrastLogistic,
    FusedVessel,
    MetadataMLP,
    QuadraticLogistic,
    R2Plus1DClassifier,
    pad_clip,
)

MODEL_FAMILIES: dict[str, type[nn.Module]] = {
    "r2plus1d": R2Plus1DClassifier,
    "metadata_mlp": MetadataMLP,
    "metadata_logreg": QuadraticLogistic,
    "contrast_logreg": ContrastLogistic,
    "fused_vessel": FusedVessel,
    "unet": UNet,
    "polar_cnn": PolarMapCNN,
}


class UnknownModelFamily(ValueError):
    """Raised when a model family name is not in ``MODEL_FAMILIES``."""


def build_model(family: str, **hparams: object) -> nn.Module:
    """Return a new, untrained model of ``family`` built with ``hparams``."""
    try:
        model_class = MODEL_FAMILIES[family]
    except KeyError:
        known = ", ".join(sorted(MODEL_FAMILIES))
        raise UnknownModelFamily(f"unknown model family {family!r}; known families: {known}") from None
    return model_class(**hparams)


__all__ = [
    "ContrastLogistic",
    "FusedVessel",
    "MODEL_FAMILIES",
    "MetadataMLP",
    "PolarMapCNN",
    "QuadraticLogistic",
    "R2Plus1DClassifier",
    "UNet",
    "UnknownModelFamily",
    "bce_dice_loss",
    "build_model",
    "pad_clip",
    "pick_device",
]
