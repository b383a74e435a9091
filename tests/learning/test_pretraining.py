"""Starting the vessel video networks from a frame-interpolation encoder (seed 001's pretraining)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from gpu_workers.workers import TrainingWorker
from learning.cohorts import generate_xa_cohort
from learning.domain import segment_arteries, segment_vessels
from learning.models import FusedVessel, R2Plus1DClassifier
from learning.models.interpolation import FrameInterpolator
from learning.tasks import CineRef, Example, TrainRequest, get_task
from learning.tasks.vessel import VesselParams


def _encoder_bytes(width: int, seed: int = 7) -> tuple[bytes, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    interpolator = FrameInterpolator(width=width)
    for parameter in interpolator.features.parameters():  # not the default initialisation of any network
        torch.nn.init.uniform_(parameter, -0.3, 0.3)
    state = interpolator.encoder_state()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue(), state


def test_the_vessel_task_loads_the_encoder_into_every_video_network_and_nothing_else(tmp_path):
    spec = get_task("vessel_type", str(tmp_path))
    _, state = _encoder_bytes(width=4)
    params = VesselParams(width=4, ensemble=2)
    fused = spec.build("fused_vessel", params)
    assert isinstance(fused, FusedVessel)
    heads_before = [video.classifier.weight.detach().clone() for video in fused.videos]
    loaded = spec.initialise(fused, "fused_vessel", state)
    assert loaded == 2 * len(state)
    for video, head in zip(fused.videos, heads_before, strict=True):
        own = video.state_dict()
        for name, tensor in state.items():
            assert torch.equal(own[name], tensor), name
        assert torch.equal(video.classifier.weight, head)  # the head keeps its own start
    single = spec.build("r2plus1d", params)
    assert isinstance(single, R2Plus1DClassifier)
    assert spec.initialise(single, "r2plus1d", state) == len(state)
    # The regression has no encoder; an encoder of another width fits nowhere.
    assert spec.initialise(spec.build("contrast_logreg", params), "contrast_logreg", state) == 0
    _, wide = _encoder_bytes(width=8)
    assert spec.initialise(spec.build("r2plus1d", params), "r2plus1d", wide) == 0


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> tuple[Path, list[Example]]:
    root = tmp_path_factory.mktemp("xa-pretrain")
    truths = generate_xa_cohort(root, n_patients=6, runs_per_patient=2, frames=(8, 12), size=32, seed=11)
    examples = [
        Example(
            ref=CineRef(
                item_id=i,
                path=str(t.path.relative_to(root)),
                geometry=(t.primary_angle, t.secondary_angle, t.source_to_detector_mm, t.source_to_patient_mm),
            ),
            target=["LCA", "RCA", "neither"].index(t.vessel),
            split="train",
            label_id=i,
            label_version=1,
        )
        for i, t in enumerate(truths)
    ]
    return root, examples


def _train(root: Path, examples: list[Example], **changes):
    return TrainingWorker(device="cpu").run(
        TrainRequest(
            task="vessel_type",
            family="r2plus1d",
            hparams={"epochs": 1, "size": 16, "clip_frames": 4, "width": 4, "crops": 2, "patience": 0},
            train=tuple(examples[:8]),
            validation=tuple(examples[8:10]),
            test=tuple(examples[10:]),
            media_root=str(root),
            **changes,
        )
    )


def test_a_training_started_from_the_encoder_says_so_and_trains_from_it(cohort):
    root, examples = cohort
    weights, _ = _encoder_bytes(width=4)
    plain = _train(root, examples)
    pretrained = _train(root, examples, init_weights=weights, init_source="interpolation model 3")
    assert "initialised_from" not in plain.metrics
    assert pretrained.metrics["initialised_from"] == {"source": "interpolation model 3", "tensors": 48}
    # Same seed, same data: only the start differs, so the trained weights differ.
    assert plain.weights != pretrained.weights


def test_pda_and_pla_follow_the_dominance_and_an_unknown_one_links_nowhere():
    assert segment_arteries(1, "") == ("RCA",)
    assert segment_arteries(7, "left") == ("LCA",)
    assert segment_arteries(4, "right") == ("RCA",)
    assert segment_arteries(16, "left") == ("LCA",)
    assert segment_arteries(4, "codominant") == ("LCA", "RCA")
    assert segment_arteries(4, "") == ()
    assert segment_vessels(5, "") == ("LM",)
    assert segment_vessels(9, "") == ("LAD",)
    assert segment_vessels(12, "") == ("LCX",)
    assert segment_vessels(16, "left") == ("LCX",)
    assert segment_vessels(4, "") == ()
    with pytest.raises(ValueError, match="1–16"):
        segment_arteries(17, "right")
    with pytest.raises(ValueError, match="dominance"):
        segment_vessels(3, "balanced")
