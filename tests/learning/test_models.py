"""Every model family builds by name, has the documented output shape and learns a tiny synthetic task on CPU."""

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from learning.models import (
    MODEL_FAMILIES,
    MetadataMLP,
    PolarMapCNN,
    UnknownModelFamily,
    bce_dice_loss,
    build_model,
    pad_clip,
    pick_device,
)

LEARNED = 0.7  # final loss must fall below this fraction of the first


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


def _train(
    model: nn.Module, step_loss: Callable[[], torch.Tensor], steps: int, lr: float = 1e-2
) -> tuple[float, float]:
    """Run Adam on one fixed batch and return the first and last training losses."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        optimiser.zero_grad()
        loss = step_loss()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses[0], losses[-1]


def _moving_blob_clips(count: int, frames: int = 8, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Return clips of a bright blob sliding down the left (label 0) or right (label 1) half."""
    labels = torch.arange(count) % 2
    clips = torch.rand(count, 1, frames, size, size) * 0.1
    for index, label in enumerate(labels.tolist()):
        column = size // 4 + label * size // 2 + int(torch.randint(-2, 3, ()))
        for frame in range(frames):
            row = 4 + frame * (size - 8) // frames
            clips[index, 0, frame, row : row + 4, column - 2 : column + 2] = 1.0
    return clips, labels


def test_registry_names_every_family():
    assert set(MODEL_FAMILIES) == {
        "r2plus1d",
        "metadata_mlp",
        "metadata_logreg",
        "contrast_logreg",
        "fused_vessel",
        "unet",
        "polar_cnn",
    }
    assert isinstance(build_model("polar_cnn", fusion="late", width=4), PolarMapCNN)


def test_unknown_family_lists_the_known_ones():
    known = "contrast_logreg, fused_vessel, metadata_logreg, metadata_mlp, polar_cnn, r2plus1d, unet"
    with pytest.raises(UnknownModelFamily, match=f"'resnet'.*{known}"):
        build_model("resnet")
    assert issubclass(UnknownModelFamily, ValueError)


def test_unknown_fusion_is_named():
    with pytest.raises(ValueError, match="'middle'"):
        PolarMapCNN(fusion="middle")


def test_pick_device_matches_cuda_availability():
    assert pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_video_classifier_learns_blob_side():
    model = build_model("r2plus1d", num_classes=3, width=8)
    clips, labels = _moving_blob_clips(8)
    first, last = _train(model, lambda: F.cross_entropy(model(clips), labels), steps=25)
    assert last < LEARNED * first
    model.eval()
    assert model(clips).shape == (8, 3)


def test_short_clip_is_zero_padded_and_classified():
    short = torch.rand(2, 1, 5, 32, 32)
    padded = pad_clip(short, 8)
    assert padded.shape == (2, 1, 8, 32, 32)
    torch.testing.assert_close(padded[:, :, :5], short)
    assert padded[:, :, 5:].abs().sum() == 0
    assert pad_clip(padded, 4) is padded
    model = build_model("r2plus1d", num_classes=3, width=4).eval()
    assert model(padded).shape == (2, 3)


def test_metadata_mlp_learns_from_raw_geometry():
    count = 64
    primary = torch.empty(count).uniform_(-60, 60)
    secondary = torch.empty(count).uniform_(-30, 30)
    detector = torch.empty(count).uniform_(950, 1150)
    patient = torch.empty(count).uniform_(700, 800)
    features = torch.stack([primary, secondary, detector, patient], dim=1)
    labels = (primary > 0).long()  # stand-in for "LAO views show the RCA"
    model = build_model("metadata_mlp", num_classes=3, hidden=16)
    model.set_normalisation(features.mean(0), features.std(0))
    assert torch.allclose(model.state_dict()["mean"], features.mean(0))
    first, last = _train(model, lambda: F.cross_entropy(model(features), labels), steps=30)
    assert last < LEARNED * first
    assert model(features).shape == (count, 3)


def test_metadata_mlp_refuses_bad_normalisation():
    model = MetadataMLP()
    with pytest.raises(ValueError, match="positive"):
        model.set_normalisation(torch.zeros(4), torch.tensor([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        model.set_normalisation(torch.zeros(3), torch.ones(3))


def test_unet_learns_bright_pixel_masks():
    images = torch.rand(4, 3, 32, 32)
    masks = (images.mean(dim=1, keepdim=True) > 0.6).float()
    model = build_model("unet", base=4, depth=4)
    first, last = _train(model, lambda: bce_dice_loss(model(images), masks), steps=30)
    assert last < LEARNED * first
    assert model(images).shape == (4, 1, 32, 32)


def test_unet_pads_sides_that_are_not_multiples_of_sixteen():
    model = build_model("unet", base=4, depth=4).eval()
    assert model(torch.rand(1, 3, 40, 27)).shape == (1, 1, 40, 27)


def test_bce_dice_loss_is_small_for_a_confident_match():
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:5, 2:5] = 1
    right = bce_dice_loss((target * 2 - 1) * 20, target)
    wrong = bce_dice_loss((1 - target * 2) * 20, target)
    assert right < 0.01 < 1 < wrong


def _polar_maps(count: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return rest, stress, clinical and territory labels: a territory is abnormal when its stress quadrant is dim."""
    rest = torch.rand(count, 1, size, size) * 0.2 + 0.8
    stress = rest.clone()
    labels = (torch.rand(count, 3) > 0.5).float()
    half = size // 2
    quadrants = [
        (slice(0, half), slice(0, half)),
        (slice(0, half), slice(half, size)),
        (slice(half, size), slice(0, half)),
    ]
    for territory, (rows, columns) in enumerate(quadrants):
        dim = labels[:, territory].view(count, 1, 1, 1) > 0
        stress[:, :, rows, columns] = torch.where(dim, stress[:, :, rows, columns] * 0.3, stress[:, :, rows, columns])
    clinical = torch.randn(count, 4)
    return rest, stress, clinical, labels


@pytest.mark.parametrize("fusion", ["early", "late"])
def test_polar_map_cnn_learns_dim_quadrants(fusion):
    rest, stress, clinical, labels = _polar_maps(16)
    model = build_model("polar_cnn", fusion=fusion, width=8)
    first, last = _train(
        model, lambda: F.binary_cross_entropy_with_logits(model(rest, stress, clinical), labels), steps=30, lr=3e-3
    )
    assert last < LEARNED * first
    model.eval()
    assert model(rest, stress, clinical).shape == (16, 3)


def test_polar_map_cnn_requires_its_clinical_features():
    rest, stress, _, _ = _polar_maps(2)
    with pytest.raises(ValueError, match="4 clinical features"):
        PolarMapCNN().eval()(rest, stress)
    assert PolarMapCNN(clinical_features=0, width=4).eval()(rest, stress).shape == (2, 3)
