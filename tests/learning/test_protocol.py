"""The evaluation protocol on the learner's side: paired comparisons, ECE, the angle model, classes, stacking."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from learning import metrics
from learning.masks import mask_encode
from learning.models import QuadraticLogistic
from learning.tasks import CineRef, Example, ItemScore, OctFrameRef, OctTask, TrainRequest, fit, score
from learning.tasks.base import ScoreRequest
from learning.tasks.training import paired_comparison
from learning.tasks.vessel import CLASSES, VesselParams, VesselTask, fit_quadratic

CPU = torch.device("cpu")


def angle_examples(n: int, seed: int, split: str = "train", flip: bool = False) -> list[Example]:
    """Runs whose class is a quadratic function of the two angles: RCA inside a disc of (primary, secondary)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a, b = rng.uniform(-60, 60), rng.uniform(-40, 40)
        target = int((a / 60) ** 2 + (b / 40) ** 2 < 0.45)
        if flip:
            target = 1 - target
        ref = CineRef(item_id=seed * 1000 + i, path="never-read.dcm", geometry=(a, b, 1000.0, 750.0))
        out.append(Example(ref=ref, target=target, split=split, label_id=i, label_version=1))
    return out


def logreg_request(
    train, validation=(), test=(), family="metadata_logreg", media_root="/nonexistent", **hparams
) -> TrainRequest:
    return TrainRequest(
        task="vessel_type",
        family=family,
        hparams=hparams,
        train=tuple(train),
        validation=tuple(validation),
        test=tuple(test),
        media_root=media_root,
        seed=0,
    )


# ---------------------------------------------------------------------------------------------------- statistics
def test_paired_bootstrap_of_identical_predictions_is_exactly_zero():
    truth = np.array([0, 1, 1, 0, 1, 0, 1, 1])
    diff, low, high = metrics.paired_bootstrap(metrics.accuracy, (truth, truth), (truth, truth), n_boot=200)
    assert (diff, low, high) == (0.0, 0.0, 0.0)


def test_paired_bootstrap_separates_a_clearly_better_model_from_noise():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 60)
    good = np.where(rng.random(60) < 0.95, truth, 1 - truth)
    coin = rng.integers(0, 2, 60)
    diff, low, high = metrics.paired_bootstrap(metrics.accuracy, (truth, good), (truth, coin), alpha=0.1)
    assert diff == pytest.approx(metrics.accuracy(truth, good) - metrics.accuracy(truth, coin))
    assert 0 < low <= diff <= high
    # A model one item better than another on 60 items is not better beyond noise.
    nearly = good.copy()
    nearly[np.flatnonzero(nearly == truth)[0]] ^= 1
    diff, low, high = metrics.paired_bootstrap(metrics.accuracy, (truth, good), (truth, nearly), alpha=0.1)
    assert diff == pytest.approx(1 / 60) and low <= 0 < high


def test_paired_bootstrap_refuses_unpaired_rows():
    with pytest.raises(ValueError, match="row counts differ"):
        metrics.paired_bootstrap(np.mean, (np.ones(3),), (np.ones(4),))


def test_frames_of_one_patient_are_resampled_together():
    # 8 patients of 12 frames each; the candidate wins every frame of 5 patients and loses every frame of 3.
    # Counted as 96 independent frames, +0.25 looks far beyond noise; as 8 patients it is not.
    wins = np.repeat([1.0, 1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0], 12)
    patients = np.repeat(np.arange(8), 12)
    zero = np.zeros_like(wins)
    _, low_items, _ = metrics.paired_bootstrap(np.mean, (wins,), (zero,), alpha=0.1)
    diff, low, high = metrics.paired_bootstrap(np.mean, (wins,), (zero,), alpha=0.1, groups=patients)
    assert diff == pytest.approx(0.25)
    assert low_items > 0  # the items alone would promote
    assert low < 0 < high  # the patients say: within noise
    # The shown interval gets the same treatment.
    point, ci_low, ci_high = metrics.bootstrap_ci(np.mean, wins, groups=patients)
    assert point == pytest.approx(0.25) and ci_low < 0 < ci_high
    assert metrics.bootstrap_ci(np.mean, wins)[1] > 0


def test_one_patient_keeps_the_item_interval():
    # A single patient gives a cluster bootstrap no spread: the wider item interval stands.
    rng = np.random.default_rng(1)
    wins = rng.normal(0.1, 1.0, 40)
    zero = np.zeros(40)
    alone = metrics.paired_bootstrap(np.mean, (wins,), (zero,), alpha=0.1)
    assert metrics.paired_bootstrap(np.mean, (wins,), (zero,), alpha=0.1, groups=np.zeros(40)) == alone
    with pytest.raises(ValueError, match="groups: expected 40 group keys"):
        metrics.paired_bootstrap(np.mean, (wins,), (zero,), groups=np.zeros(39))


def test_a_perfect_first_model_on_few_patients_beats_the_majority_class():
    # 10 test runs of 6 patients, 4 of them with left runs only (as in a 40-label round through the API): a
    # patient resample holds left runs only about 9 % of the time, and there the majority class is perfect too.
    truth = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    patients = np.array([1, 1, 2, 3, 3, 4, 5, 5, 6, 6])
    majority = np.zeros(10, dtype=int)

    def macro_f1(t, p):
        return metrics.macro_f1(t, p, range(len(CLASSES)))

    free = metrics.paired_bootstrap(macro_f1, (truth, truth), (truth, majority), alpha=0.1, groups=patients)
    stratified = metrics.paired_bootstrap(
        macro_f1, (truth, truth), (truth, majority), alpha=0.1, groups=patients, strata=truth
    )
    assert free[0] == stratified[0] == pytest.approx(1 - 0.375)
    assert free[1] == 0.0  # one-class resamples make it a tie
    assert stratified[1] > 0.4  # resamples holding both classes: beyond noise

    # Every resample that counts holds both classes, in the item and the patient bootstrap alike.
    seen = []

    def both_classes(t):
        seen.append(len(set(t.tolist())))
        return float(np.mean(t))

    metrics.bootstrap_ci(both_classes, truth, n_boot=300, groups=patients, strata=truth)
    assert len(seen) == 1 + 2 * 300 and set(seen) == {2}
    with pytest.raises(ValueError, match="strata: expected 10 keys"):
        metrics.bootstrap_ci(np.mean, truth, strata=truth[:9])


def test_the_vessel_comparison_resamples_within_classes():
    examples = angle_examples(12, seed=5, split="test")
    truth = [e.target for e in examples]
    assert VesselTask("/nonexistent").metric_strata(examples).tolist() == truth
    perfect = []
    for e in examples:
        probabilities = {c: float(c == CLASSES[e.target]) for c in CLASSES}
        output = {"vessel": CLASSES[e.target], "probabilities": probabilities}
        perfect.append(ItemScore(e.ref.item_id, output, 0.0, {}, 1.0))
    result = paired_comparison(VesselTask("/nonexistent"), perfect, perfect, examples, seed=0)
    assert result["classes"] == len(set(truth))


def test_expected_calibration_error_by_hand():
    # Two bins: 0.9-confident (2 of 2 right → gap 0.1) and 0.6-confident (1 of 2 right → gap 0.1): ECE 0.1.
    probs = np.array([[0.9, 0.1], [0.1, 0.9], [0.6, 0.4], [0.4, 0.6]])
    truth = np.array([0, 1, 0, 0])
    assert metrics.expected_calibration_error(truth, probs) == pytest.approx(0.1)
    assert metrics.expected_calibration_error(truth[:2], probs[:2], n_bins=1) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="probs"):
        metrics.expected_calibration_error(truth, probs[:3])


# ---------------------------------------------------------------------------------------------------- angle model
def test_the_angle_model_learns_a_quadratic_boundary_and_matches_scikit_learn(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    train = angle_examples(80, seed=1)
    model = QuadraticLogistic(num_classes=3)
    fitted = fit_quadratic(model, train, VesselParams().active)
    assert fitted["classes"] == ["LCA", "RCA"] and fitted["C"] > 0
    new = angle_examples(200, seed=2)
    x = np.array([e.ref.geometry[:2] for e in train])
    y = np.array([e.target for e in train])
    reference = make_pipeline(
        StandardScaler(),
        PolynomialFeatures(2, include_bias=False),
        StandardScaler(),
        LogisticRegression(C=fitted["C"], max_iter=2000),
    ).fit(x, y)
    expected = reference.predict_proba(np.array([e.ref.geometry[:2] for e in new]))
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([e.ref.geometry for e in new], dtype=torch.float32)), 1).numpy()
    assert np.abs(probs[:, :2] - expected).max() < 1e-2 and probs[:, 2].max() == 0.0  # solver tolerance
    accuracy = np.mean(probs.argmax(1) == np.array([e.target for e in new]))
    assert accuracy > 0.9  # a linear model on the raw angles cannot draw a disc


def test_a_class_without_training_examples_is_never_predicted():
    outcome = fit(VesselTask("/nonexistent"), logreg_request(angle_examples(40, seed=3)), CPU)
    assert outcome.hparams["classes"] == "LCA,RCA"
    refs = tuple(e.ref for e in angle_examples(30, seed=4))
    scores = score(VesselTask("/nonexistent"), ScoreRequest("vessel_type", outcome.weights, refs, "/x"), CPU)
    assert all(s.output["probabilities"]["neither"] == 0.0 and s.output["vessel"] != "neither" for s in scores)


def test_a_lead_can_drop_a_class_from_training_and_evaluation():
    train = angle_examples(40, seed=5)
    neither = [Example(ref=e.ref, target=2, split="train", label_id=e.label_id) for e in angle_examples(10, seed=6)]
    test = angle_examples(12, seed=7, split="test") + [
        Example(ref=e.ref, target=2, split="test", label_id=1) for e in angle_examples(5, seed=8)
    ]
    outcome = fit(VesselTask("/nonexistent"), logreg_request(train + neither, test=test, classes="LCA,RCA"), CPU)
    assert outcome.hparams["classes"] == "LCA,RCA"
    assert outcome.metrics["test"]["n"] == 12  # the "neither" runs are outside what this model answers
    assert outcome.metrics["train_examples"] == 40


def test_test_labels_never_change_the_weights():
    train, validation = angle_examples(40, seed=9), angle_examples(12, seed=10, split="validation")
    test = angle_examples(15, seed=11, split="test")
    flipped = angle_examples(15, seed=11, split="test", flip=True)
    task = VesselTask("/nonexistent")
    first = fit(task, logreg_request(train, validation, test), CPU)
    second = fit(task, logreg_request(train, validation, flipped), CPU)
    assert first.weights == second.weights
    assert first.metrics["test"]["accuracy"] != second.metrics["test"]["accuracy"]


def test_training_reports_the_comparison_with_the_majority_class_and_calibration():
    train, validation = angle_examples(60, seed=12), angle_examples(20, seed=13, split="validation")
    test = angle_examples(40, seed=14, split="test")
    outcome = fit(VesselTask("/nonexistent"), logreg_request(train, validation, test), CPU)
    versus = outcome.metrics["comparison"]["baseline"]
    assert outcome.metrics["baseline_test"]["name"] == "majority class" and versus["n"] == 40
    assert versus["candidate"] == pytest.approx(outcome.metrics["test"]["macro_f1"])
    assert versus["interval"][0] > 0  # the angles carry the class: far beyond the majority class
    scored = outcome.metrics["test"]
    assert 0 <= scored["ece"] <= 1 and len(scored["accuracy_ci"]) == 2
    assert 0 <= scored["ece_ci"][0] < scored["ece_ci"][1] <= 1  # ECE carries its interval like every metric
    # The angle model chooses its strength by cross-validated log-loss over train + validation: no temperature.
    assert outcome.metrics["calibration"]["fitted"] is False
    assert outcome.metrics["train_examples"] == 60


def test_the_angle_model_learns_from_validation_labels_too_but_never_from_test_labels():
    train, validation = angle_examples(30, seed=16), angle_examples(20, seed=17, split="validation")
    flipped = angle_examples(20, seed=17, split="validation", flip=True)
    task = VesselTask("/nonexistent")
    assert (
        fit(task, logreg_request(train, validation), CPU).weights
        != fit(task, logreg_request(train, flipped), CPU).weights
    )


def test_temperature_scaling_cools_an_overconfident_model():
    rng = np.random.default_rng(0)
    truth = torch.tensor(rng.integers(0, 2, 200))
    wrong = torch.tensor(rng.random(200) < 0.3)
    predicted = torch.where(wrong, 1 - truth, truth)
    log_probs = torch.log_softmax(10.0 * torch.nn.functional.one_hot(predicted, 3).float(), dim=1)
    model = QuadraticLogistic()
    temperature = VesselTask._fit_temperature(model, log_probs, truth)
    assert temperature > 2 and float(model.temperature) == pytest.approx(temperature)


# ---------------------------------------------------------------------------------------------------- baselines
def test_an_all_calcium_mask_loses_to_the_empty_mask_baseline():
    task = OctTask("/nonexistent")
    refs = [OctFrameRef(item_id=i, path="p.dcm", frame_index=i, rows=16, columns=16) for i in range(12)]
    truth = []
    for i, ref in enumerate(refs):
        mask = np.zeros((16, 16), bool)
        if i % 3 == 0:
            mask[2:5, 2:5] = True
        truth.append(Example(ref=ref, target=mask_encode(mask), split="test", label_id=i))
    everything = mask_encode(np.ones((16, 16), bool))
    painted = [
        ItemScore(item_id=r.item_id, output={"mask": everything}, uncertainty=0.0, detail={}, confidence=1.0)
        for r in refs
    ]
    versus = paired_comparison(task, painted, task.baseline_scores([], refs), truth, seed=0)
    assert versus["other"] == pytest.approx(8 / 12)  # the empty mask is right on every frame without calcium
    assert versus["difference"] < 0 and versus["interval"][1] < 0


def test_the_majority_baseline_answers_the_training_majority():
    train = angle_examples(30, seed=15)
    majority = CLASSES[np.bincount([e.target for e in train]).argmax()]
    scores = VesselTask("/nonexistent").baseline_scores(train, [e.ref for e in train[:3]])
    assert {s.output["vessel"] for s in scores} == {majority}


# ---------------------------------------------------------------------------------------------------- fused model
def xa_examples(root, **cohort) -> tuple[str, list[Example]]:
    """Generate an XA cohort under root; return root and one training example per run, labelled with the truth."""
    from learning.cohorts import generate_xa_cohort

    examples = []
    for i, t in enumerate(generate_xa_cohort(root, runs_per_patient=3, frames=(12, 16), **cohort)):
        geometry = (t.primary_angle, t.secondary_angle, t.source_to_detector_mm, t.source_to_patient_mm)
        ref = CineRef(item_id=i, path=str(t.path.relative_to(root)), geometry=geometry)
        examples.append(Example(ref=ref, target=CLASSES.index(t.vessel), split="train", label_id=i))
    return str(root), examples


@pytest.fixture(scope="module")
def cine_examples(tmp_path_factory) -> tuple[str, list[Example]]:
    return xa_examples(tmp_path_factory.mktemp("xa"), n_patients=8, size=48, seed=21)


FUSED = {"epochs": 2, "batch_size": 4, "size": 32, "clip_frames": 8, "crops": 2, "width": 2, "patience": 0}


def fused_request(root, train, validation, **extra) -> TrainRequest:
    return TrainRequest(
        task="vessel_type",
        family="fused_vessel",
        hparams={**FUSED, **extra},
        train=tuple(train),
        validation=tuple(validation),
        test=(),
        media_root=root,
        seed=0,
    )


def test_without_enough_validation_the_fused_model_is_the_contrast_model(cine_examples):
    root, examples = cine_examples
    train, validation = examples[:18], [Example(e.ref, e.target, "validation", e.label_id) for e in examples[18:]]
    task = VesselTask(root)
    fused = fit(task, fused_request(root, train, validation, min_validation=50), CPU)
    assert fused.metrics["calibration"]["fitted"] is False
    alone = fit(task, logreg_request(train, family="contrast_logreg", media_root=root), CPU)
    refs = tuple(e.ref for e in examples)
    by_fused = score(task, ScoreRequest("vessel_type", fused.weights, refs, root), CPU)
    by_alone = score(task, ScoreRequest("vessel_type", alone.weights, refs, root), CPU)
    for a, b in zip(by_fused, by_alone, strict=True):
        for name in CLASSES:
            assert a.output["probabilities"][name] == pytest.approx(b.output["probabilities"][name], abs=1e-4)


def test_the_fused_model_stacks_video_and_angles_on_validation(cine_examples):
    root, examples = cine_examples
    train, validation = examples[:14], [Example(e.ref, e.target, "validation", e.label_id) for e in examples[14:]]
    outcome = fit(VesselTask(root), fused_request(root, train, validation, min_validation=4), CPU)
    stacking = outcome.metrics["calibration"]
    assert stacking["fitted"] is True and stacking["n"] == len(validation)
    assert stacking["video_weight"] >= 0 and stacking["angle_weight"] >= 0
    losses = stacking["validation_log_loss"]
    assert losses["fused"] <= min(losses["video"], losses["angles"]) + 0.05  # stacking fits on these very runs
    scores = score(
        VesselTask(root), ScoreRequest("vessel_type", outcome.weights, tuple(e.ref for e in examples), root), CPU
    )
    assert all(abs(sum(s.output["probabilities"].values()) - 1) < 1e-4 for s in scores)


def test_an_ensembles_members_each_learn_on_their_own_loss():
    logits = torch.randn(3, 5, 3)
    targets = torch.tensor([0, 1, 2, 1, 0])
    expected = np.mean([torch.nn.functional.cross_entropy(member, targets).item() for member in logits])
    assert VesselTask("/nonexistent").loss(logits, targets).item() == pytest.approx(expected)


def test_geometric_jitter_moves_every_frame_alike_and_keeps_the_clip_shape():
    clip = torch.zeros(1, 4, 32, 32)
    clip[:, :, 12:20, 12:20] = 1.0
    moved = VesselTask.geometric_jitter(clip, np.random.default_rng(3))
    assert moved.shape == clip.shape and not torch.equal(moved, clip)
    assert all(torch.allclose(moved[0, 0], moved[0, k], atol=1e-6) for k in range(1, 4))


# ---------------------------------------------------------------------------------------------------- contrast model
def test_the_contrast_image_keeps_what_iodine_filled_and_cancels_the_background():
    from learning.tasks.vessel import contrast_features, contrast_image

    rng = np.random.default_rng(0)
    background = 0.7 + 0.1 * rng.random((48, 48), dtype=np.float32)
    frames = np.repeat(background[None], 10, axis=0)
    assert contrast_image(frames).max() < 1e-6  # nothing changed over time: no contrast anywhere
    assert not contrast_features(frames).any()
    filled = frames.copy()
    filled[5:, 20:24, :] -= 0.3  # a horizontal vessel fills from frame 5 on
    image = contrast_image(filled)
    row = image.mean(axis=1)
    assert image.shape == (64, 64) and row[27:32].min() > 0.2 and row[:20].max() < 0.02 and row[40:].max() < 0.02
    vertical = frames.copy()
    vertical[5:, :, 20:24] -= 0.3
    assert np.abs(contrast_features(filled) - contrast_features(vertical)).sum() > 0.5  # orientation tells them apart


@pytest.fixture(scope="module")
def atypical_views(tmp_path_factory) -> tuple[str, list[Example]]:
    """Runs filmed in views pooled across both arteries: the angles alone say little about the artery."""
    return xa_examples(tmp_path_factory.mktemp("xa-pooled"), n_patients=24, size=64, seed=5, view_mix="pooled")


def test_the_contrast_model_reads_the_vessels_where_the_angles_cannot(atypical_views):
    root, examples = atypical_views
    train, held_out = examples[:45], examples[45:]  # 15 patients, then 9 others
    task = VesselTask(root)
    truth = np.array([e.target for e in held_out])

    def accuracy(family):
        outcome = fit(task, logreg_request(train, family=family, media_root=root), CPU)
        scores = score(task, ScoreRequest("vessel_type", outcome.weights, tuple(e.ref for e in held_out), root), CPU)
        return np.mean([CLASSES.index(s.output["vessel"]) == t for s, t in zip(scores, truth, strict=True)])

    contrast, angles = accuracy("contrast_logreg"), accuracy("metadata_logreg")
    assert contrast >= 0.85 and contrast > angles + 0.1


def test_the_contrast_model_scores_runs_without_recorded_angles(atypical_views):
    root, examples = atypical_views
    blind = [Example(CineRef(e.ref.item_id, e.ref.path, None), e.target, "train", e.label_id) for e in examples[:30]]
    outcome = fit(VesselTask(root), logreg_request(blind[:20], family="contrast_logreg", media_root=root), CPU)
    scores = score(
        VesselTask(root), ScoreRequest("vessel_type", outcome.weights, tuple(e.ref for e in blind), root), CPU
    )
    assert len(scores) == 30
    assert all(np.isfinite(list(s.output["probabilities"].values())).all() for s in scores)
    assert (
        np.mean([CLASSES.index(s.output["vessel"]) == e.target for s, e in zip(scores[20:], blind[20:], strict=True)])
        >= 0.7
    )


def test_the_paired_comparison_scores_probabilities_by_log_loss_on_the_same_items():
    task = VesselTask("/nonexistent")
    examples = angle_examples(40, seed=3)

    def scores(confidence: float) -> list[ItemScore]:
        out = []
        for e in examples:
            probs = {"LCA": 1 - confidence, "RCA": 1 - confidence, "neither": 0.0}
            probs[CLASSES[e.target]] = confidence
            out.append(
                ItemScore(e.ref.item_id, {"probabilities": probs, "vessel": CLASSES[e.target]}, 0.0, {}, confidence)
            )
        return out

    sure, unsure = scores(0.95), scores(0.6)
    versus = paired_comparison(task, sure, unsure, examples, seed=0)
    assert versus["difference"] == 0.0  # both right on every run: tied on macro-F1
    proper = versus["proper"]
    assert proper["metric"] == "log loss"
    assert proper["candidate"] == pytest.approx(-np.log(0.95)) and proper["other"] == pytest.approx(-np.log(0.6))
    assert proper["difference"] == pytest.approx(np.log(0.95) - np.log(0.6)) and proper["interval"][0] > 0
    assert versus["patients"] is None  # these examples name no patients: items alone


def test_the_paired_comparison_resamples_the_patients_it_is_told():
    task = VesselTask("/nonexistent")
    # 6 patients of 8 runs; the candidate is right on every run of 4 patients, the other on every run of 2.
    examples = [dataclasses.replace(e, group=i // 8) for i, e in enumerate(angle_examples(48, seed=5))]

    def scores(right_patients: set[int]) -> list[ItemScore]:
        out = []
        for e in examples:
            vessel = CLASSES[e.target] if e.group in right_patients else CLASSES[1 - e.target]
            out.append(
                ItemScore(
                    e.ref.item_id,
                    {"probabilities": {c: float(c == vessel) for c in CLASSES}, "vessel": vessel},
                    0.0,
                    {},
                    1.0,
                )
            )
        return out

    candidate, champion = scores({0, 1, 2, 3}), scores({4, 5})
    versus = paired_comparison(task, candidate, champion, examples, seed=0)
    assert versus["patients"] == 6 and versus["proper"]["patients"] == 6
    assert versus["difference"] > 0 and versus["interval"][0] <= 0  # 4 patients against 2: within noise
    ungrouped = [dataclasses.replace(e, group=None) for e in examples]
    assert paired_comparison(task, candidate, champion, ungrouped, seed=0)["interval"][0] > 0


def test_the_angle_model_answers_a_run_without_angles_as_the_mean_angles():
    train = angle_examples(60, seed=4)
    model = QuadraticLogistic(num_classes=3)
    fit_quadratic(model, train, VesselParams().active)
    mean = [float(model.mean[0]), float(model.mean[1]), 1000.0, 750.0]
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([[np.nan, np.nan, np.nan, np.nan], mean])), 1).numpy()
    assert np.isfinite(probs).all() and np.allclose(probs[0], probs[1], atol=1e-6)
