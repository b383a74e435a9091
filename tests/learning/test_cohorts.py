"""Tests of the synthetic cohort generator (pure Python: run with -p no:django)."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import ExplicitVRLittleEndian, RLELossless
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from learning.cohorts import (
    IVOCT_SOP_CLASS,
    MANIFEST_HEADER,
    SC_SOP_CLASS,
    SEGMENT_TERRITORY,
    SPECT_DIFFICULTIES,
    TERRITORY_SEGMENTS,
    VIEW_MIXES,
    XA_SOP_CLASS,
    SpectDifficulty,
    XaView,
    fake_patient,
    generate_oct_cohort,
    generate_spect_cohort,
    generate_xa_cohort,
    ica_obstructive,
    read_truth_json,
    render_oct_pullback,
    render_xa_run,
    sample_view,
    segment_map,
    territory_abnormal,
    write_oct_pullback,
    write_truth_json,
    write_xa_run,
    write_xa_run_rle,
)
from learning.cohorts.__main__ import main as cli_main
from learning.cohorts.xa_views import jitter_view

# The domain's territory table, written out independently of the package.
DOMAIN_TERRITORIES = {
    "LAD": {1, 2, 7, 8, 13, 14, 17},
    "RCA": {3, 4, 9, 10, 15},
    "LCX": {5, 6, 11, 12, 16},
}
PHI_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "InstitutionName",
    "ReferringPhysicianName",
    "AccessionNumber",
    "OperatorsName",
)


def _assert_phi(ds: pydicom.Dataset) -> None:
    """Assert the dataset carries realistic fake PHI."""
    for keyword in PHI_KEYWORDS:
        assert str(ds.get(keyword, "")).strip(), f"{keyword} missing"
    assert re.fullmatch(r"[A-Z]+\^[A-Z]+", str(ds.PatientName))
    assert re.fullmatch(r"MRN\d{7}", ds.PatientID)
    assert re.fullmatch(r"(19|20)\d{6}", ds.PatientBirthDate)


# --- XA -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xa_cohort(tmp_path_factory: pytest.TempPathFactory) -> list:
    out = tmp_path_factory.mktemp("xa")
    return generate_xa_cohort(out, n_patients=2, runs_per_patient=3, frames=(5, 7), size=48, seed=7)


def test_xa_run_reads_back_as_multiframe_xa(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    patient = fake_patient(rng, 0)
    truth = write_xa_run(
        tmp_path / "run.dcm", vessel="RCA", rng=rng, patient=patient, frames=6, size=64, frame_time_ms=66.7
    )
    ds = pydicom.dcmread(truth.path)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.SOPClassUID == XA_SOP_CLASS and ds.Modality == "XA"
    assert ds.SOPInstanceUID == truth.sop_instance_uid
    assert ds.StudyInstanceUID == truth.study_uid
    assert int(ds.NumberOfFrames) == 6 and ds.Rows == ds.Columns == 64
    assert ds.FrameIncrementPointer == 0x00181063
    assert float(ds.FrameTime) == pytest.approx(66.7)
    assert int(ds.CineRate) == int(ds.RecommendedDisplayFrameRate) == 15
    assert float(ds.PositionerPrimaryAngle) == pytest.approx(truth.primary_angle)
    assert float(ds.PositionerSecondaryAngle) == pytest.approx(truth.secondary_angle)
    assert float(ds.DistanceSourceToDetector) == pytest.approx(truth.source_to_detector_mm)
    assert float(ds.DistanceSourceToPatient) == pytest.approx(truth.source_to_patient_mm)
    assert truth.source_to_detector_mm > truth.source_to_patient_mm
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.BitsAllocated == 8
    for keyword in (
        "WindowCenter",
        "WindowWidth",
        "SeriesInstanceUID",
        "StudyDate",
        "SeriesNumber",
        "InstanceNumber",
        "Manufacturer",
    ):
        assert keyword in ds
    _assert_phi(ds)
    assert str(ds.PatientName) == patient.name == truth.patient_name
    pixels = ds.pixel_array
    assert pixels.shape == (6, 64, 64) and pixels.dtype == np.uint8
    assert pixels.std() > 5  # not a blank image


def test_xa_16_bit_run_respects_bits_stored(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    truth = write_xa_run(
        tmp_path / "r.dcm",
        vessel="LCA",
        rng=rng,
        patient=fake_patient(rng, 0),
        frames=3,
        size=48,
        bits=16,
        bits_stored=12,
    )
    ds = pydicom.dcmread(truth.path)
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (16, 12, 11)
    pixels = ds.pixel_array
    assert pixels.dtype == np.uint16 and pixels.max() <= 4095 and pixels.max() > 255


def test_xa_rle_is_lossless_and_seed_deterministic(tmp_path: Path) -> None:
    def run(writer, name):  # noqa: ANN001
        rng = np.random.default_rng(3)
        return writer(tmp_path / name, vessel="LCA", rng=rng, patient=fake_patient(rng, 0), frames=4, size=48)

    plain = pydicom.dcmread(run(write_xa_run, "plain.dcm").path)
    rle = pydicom.dcmread(run(write_xa_run_rle, "rle.dcm").path)
    assert rle.file_meta.TransferSyntaxUID == RLELossless
    np.testing.assert_array_equal(plain.pixel_array, rle.pixel_array)


def test_xa_cohort_shares_study_per_patient(xa_cohort: list) -> None:
    assert len(xa_cohort) == 6
    by_patient: dict[str, set[str]] = {}
    for t in xa_cohort:
        by_patient.setdefault(t.patient_id, set()).add(t.study_uid)
        assert t.path.exists() and 5 <= t.frames <= 7 and t.vessel in ("LCA", "RCA")
    assert len(by_patient) == 2 and all(len(s) == 1 for s in by_patient.values())
    assert len({t.sop_instance_uid for t in xa_cohort}) == 6
    assert {t.vessel for t in xa_cohort} == {"LCA", "RCA"}


def test_xa_cohort_is_deterministic_from_seed(xa_cohort: list, tmp_path: Path) -> None:
    again = generate_xa_cohort(tmp_path / "a", n_patients=2, runs_per_patient=3, frames=(5, 7), size=48, seed=7)
    other = generate_xa_cohort(tmp_path / "b", n_patients=1, runs_per_patient=1, frames=(5, 7), size=48, seed=8)
    first = pydicom.dcmread(xa_cohort[0].path)
    assert again[0].sop_instance_uid == xa_cohort[0].sop_instance_uid
    np.testing.assert_array_equal(pydicom.dcmread(again[0].path).pixel_array, first.pixel_array)
    different = pydicom.dcmread(other[0].path).pixel_array
    assert different.shape != first.pixel_array.shape or not np.array_equal(different, first.pixel_array)


def test_xa_contrast_washes_in_then_out() -> None:
    render = render_xa_run(vessel="LCA", rng=np.random.default_rng(4), frames=30, size=64)
    vessel = render.vessel_mm > 1.5
    darkness = [float(f[vessel].mean()) for f in render.frames]
    middle = min(darkness[8:22])
    assert middle < darkness[0] - 0.05 and middle < darkness[-1] - 0.05


def test_lca_and_rca_trees_differ_structurally() -> None:
    """The RCA is one thick vessel; the LCA spreads into many thin branches."""
    rng = np.random.default_rng(5)
    thick_fraction = {"LCA": [], "RCA": []}
    for vessel in ("LCA", "RCA") * 6:
        r = render_xa_run(vessel=vessel, rng=rng, frames=2, size=96)
        on = r.vessel_mm > 0.3
        thick_fraction[vessel].append((r.vessel_mm > 2.0).sum() / max(on.sum(), 1))
    assert np.mean(thick_fraction["RCA"]) > np.mean(thick_fraction["LCA"]) + 0.08


def test_projection_angle_changes_the_picture() -> None:
    lao = XaView(35.0, 0.0, 1000.0, 750.0)
    rao = XaView(-30.0, 0.0, 1000.0, 750.0)
    a = render_xa_run(vessel="RCA", rng=np.random.default_rng(6), frames=2, size=64, view=lao)
    b = render_xa_run(vessel="RCA", rng=np.random.default_rng(6), frames=2, size=64, view=rao)
    ma, mb = a.vessel_mm > 0.3, b.vessel_mm > 0.3
    assert (ma & mb).sum() / (ma | mb).sum() < 0.5


def test_view_angles_overlap_between_vessels_but_differ_in_mean() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([i % 2 == 0 for i in range(1200)])  # True = LCA
    views = [sample_view("LCA" if lca else "RCA", rng) for lca in labels]
    x = np.array([[v.primary_angle, v.secondary_angle] for v in views])
    lca, rca = x[labels], x[~labels]
    assert rca[:, 0].mean() > lca[:, 0].mean() + 3
    assert np.abs(lca[:, 1]).mean() > np.abs(rca[:, 1]).mean() + 8
    # A 15-nearest-neighbour metadata classifier is good but far from perfect.
    train, test = slice(0, 800), slice(800, None)
    d = ((x[test, None, :] - x[None, train, :]) ** 2).sum(-1)
    votes = labels[train][np.argsort(d, axis=1)[:, :15]].mean(axis=1) > 0.5
    accuracy = (votes == labels[test]).mean()
    assert 0.7 < accuracy < 0.97


# --- IVOCT --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oct_render():  # noqa: ANN201
    return render_oct_pullback(rng=np.random.default_rng(11), frames=40, size=96)


def test_oct_pullback_reads_back_as_ivoct_rgb(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    truth = write_oct_pullback(tmp_path / "p.dcm", rng=rng, patient=fake_patient(rng, 0), frames=12, size=64)
    ds = pydicom.dcmread(truth.path)
    assert ds.SOPClassUID == IVOCT_SOP_CLASS and ds.Modality == "IVOCT"
    assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3
    assert ds.PlanarConfiguration == 0 and ds.BitsAllocated == 8
    assert int(ds.NumberOfFrames) == 12 and float(ds.FrameTime) > 0
    assert len(ds.PerFrameFunctionalGroupsSequence) == 12
    _assert_phi(ds)
    pixels = ds.pixel_array
    assert pixels.shape == (12, 64, 64, 3) and pixels.dtype == np.uint8
    assert truth.masks.shape == (12, 64, 64) and truth.masks.dtype == bool
    assert truth.lumen_centres.shape == (12, 2) and len(truth.frame_quality) == 12


def test_oct_frame_quality_has_guide_start_and_blood(oct_render) -> None:  # noqa: ANN001
    quality = oct_render.frame_quality
    assert quality[0] == "guide" and "blood" in quality and "ok" in quality
    first_other = next(i for i, q in enumerate(quality) if q != "guide")
    assert "guide" not in quality[first_other:]
    assert set(quality) <= {"ok", "blood", "guide"}


def test_oct_masks_mark_calcium_runs_only(oct_render) -> None:  # noqa: ANN001
    has_calcium = oct_render.masks.any(axis=(1, 2))
    assert has_calcium.any() and not has_calcium.all()
    guide = np.array([q == "guide" for q in oct_render.frame_quality])
    assert not has_calcium[guide].any()
    # Calcium comes in runs of at least three consecutive frames.
    edges = np.flatnonzero(np.diff(np.concatenate([[0], has_calcium.astype(int), [0]])))
    assert (np.diff(edges)[::2] >= 3).all()


def test_oct_calcium_is_darker_than_wall_at_the_same_depth(oct_render) -> None:  # noqa: ANN001
    size = oct_render.masks.shape[1]
    yy, xx = np.mgrid[0:size, 0:size]
    calcium_means, wall_means = [], []
    for k, q in enumerate(oct_render.frame_quality):
        mask = oct_render.masks[k]
        if q != "ok" or mask.sum() < 10:
            continue
        lum = oct_render.frames[k].astype(float).mean(axis=2)
        dist = np.hypot(yy - oct_render.lumen_centres[k, 0], xx - oct_render.lumen_centres[k, 1])
        lo, hi = np.percentile(dist[mask], [10, 90])
        ring = (dist >= lo) & (dist <= hi) & ~mask
        calcium_means.append(lum[mask].mean())
        wall_means.append(lum[ring].mean())
    assert len(calcium_means) >= 3
    assert np.mean(calcium_means) < 0.75 * np.mean(wall_means)


def test_oct_lumen_centre_drifts_smoothly(oct_render) -> None:  # noqa: ANN001
    centres = oct_render.lumen_centres
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    assert steps.max() < 0.05 * 96
    assert ((centres > 0) & (centres < 96)).all()


def test_oct_render_is_deterministic() -> None:
    a = render_oct_pullback(rng=np.random.default_rng(3), frames=6, size=48)
    b = render_oct_pullback(rng=np.random.default_rng(3), frames=6, size=48)
    c = render_oct_pullback(rng=np.random.default_rng(4), frames=6, size=48)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.masks, b.masks)
    assert not np.array_equal(a.frames, c.frames)


# --- SPECT --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spect_png(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    out = tmp_path_factory.mktemp("spect_png")
    return out, generate_spect_cohort(out, n_patients=80, size=48, seed=3, fmt="png")


@pytest.fixture(scope="module")
def spect_png_easy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """The same patients as spect_png, drawn in the easy setting."""
    out = tmp_path_factory.mktemp("spect_png_easy")
    return out, generate_spect_cohort(out, n_patients=80, size=48, seed=3, fmt="png", difficulty="easy")


def _territory_darkness(truths: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return per patient and territory: summed stress score, abnormal flag, mean count drop in its segments."""
    size = np.asarray(Image.open(truths[0].stress_path)).shape[0]
    seg = segment_map(size)
    scores, abnormal, drops = [], [], []
    for t in truths:
        stress = np.asarray(Image.open(t.stress_path), float)
        reference = np.percentile(stress[seg > 0], 95)
        for name, segs in DOMAIN_TERRITORIES.items():
            scores.append(sum(t.stress_scores[s - 1] for s in segs))
            abnormal.append(t.territory_abnormal[name])
            drops.append(1.0 - stress[np.isin(seg, list(segs))].mean() / reference)
    return np.array(scores), np.array(abnormal), np.array(drops)


def test_territory_tables_match_the_domain() -> None:
    assert {t: set(s) for t, s in TERRITORY_SEGMENTS.items()} == DOMAIN_TERRITORIES
    assert sorted(SEGMENT_TERRITORY) == list(range(1, 18))
    for territory, segments in DOMAIN_TERRITORIES.items():
        assert all(SEGMENT_TERRITORY[s] == territory for s in segments)


def test_territory_abnormal_threshold_is_a_summed_score_of_four() -> None:
    scores = [0] * 17
    scores[2], scores[3] = 2, 1  # RCA segments 3 and 4: sum 3
    assert territory_abnormal(tuple(scores)) == {"LAD": False, "RCA": False, "LCX": False}
    scores[14] = 1  # RCA segment 15: sum 4
    scores[16] = 3  # apex (17) belongs to the LAD: sum 3
    assert territory_abnormal(tuple(scores)) == {"LAD": False, "RCA": True, "LCX": False}
    with pytest.raises(ValueError):
        territory_abnormal((0,) * 16)


def test_segment_map_follows_the_aha_bullseye() -> None:
    seg = segment_map(101)
    c = 50
    assert seg[c, c] == 17 and seg[0, 0] == 0
    assert seg[4, c] == 1 and seg[c + 46, c] == 4  # basal anterior top, inferior bottom
    assert seg[c, 4] in (2, 3) and seg[c, 96] in (5, 6)  # septum left, lateral right
    assert seg[c - 17, c] == 13 and seg[c, c - 17] == 14 and seg[c, c + 17] == 16
    assert set(np.unique(seg)) == set(range(18))


def test_spect_territory_truth_follows_the_summed_score_rule(spect_png) -> None:  # noqa: ANN001
    _, truths = spect_png
    for t in truths:
        assert len(t.stress_scores) == len(t.rest_scores) == 17
        assert all(0 <= s <= 4 for s in t.stress_scores + t.rest_scores)
        expected = {name: sum(t.stress_scores[s - 1] for s in segs) >= 4 for name, segs in DOMAIN_TERRITORIES.items()}
        assert t.territory_abnormal == expected
    abnormal = [any(t.territory_abnormal.values()) for t in truths]
    assert 0.1 < np.mean(abnormal) < 0.8
    # Reversible defects (ischaemia) and fixed ones both occur; rest is never worse.
    assert any(t.stress_scores != t.rest_scores for t in truths)
    assert all(r <= s for t in truths for r, s in zip(t.rest_scores, t.stress_scores, strict=True))


def test_spect_defects_darken_their_territory(spect_png, spect_png_easy) -> None:  # noqa: ANN001
    for (_, truths), margin in ((spect_png_easy, 0.12), (spect_png, 0.03)):
        _, abnormal, drops = _territory_darkness(truths)
        assert abnormal.sum() >= 5
        assert drops[abnormal].mean() > drops[~abnormal].mean() + margin


def test_spect_default_maps_follow_the_scores_more_loosely_than_easy_ones(spect_png, spect_png_easy) -> None:  # noqa: ANN001
    """Artefacts, faint defects, jitter, noise and rotation weaken the score-to-picture link."""
    easy_scores, _, easy_drops = _territory_darkness(spect_png_easy[1])
    hard_scores, _, hard_drops = _territory_darkness(spect_png[1])
    np.testing.assert_array_equal(easy_scores, hard_scores)  # the difficulty changes the pictures, not the truth
    easy_r = np.corrcoef(easy_scores, easy_drops)[0, 1]
    hard_r = np.corrcoef(hard_scores, hard_drops)[0, 1]
    assert easy_r > 0.8
    assert hard_r < 0.7 and hard_r < easy_r - 0.2


def test_spect_png_manifest(spect_png) -> None:  # noqa: ANN001
    out, truths = spect_png
    with open(out / "manifest.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == MANIFEST_HEADER
    assert rows[0] == ["patient", "rest_file", "stress_file", "age", "sex", "weight", "height"]
    assert len(rows) == len(truths) + 1
    for row, t in zip(rows[1:], truths, strict=True):
        assert row[0] == t.patient_id and re.fullmatch(r"SPECT-\d{4}", row[0])
        for name in row[1:3]:
            image = Image.open(out / name)
            assert image.size == (48, 48) and image.mode == "L"
            assert np.asarray(image).max() == 255
        assert int(row[3]) == t.age and row[4] == t.sex in ("M", "F")
        assert float(row[5]) == pytest.approx(t.weight_kg)
        assert float(row[6]) == pytest.approx(t.height_cm) and 140 < t.height_cm < 210


def test_spect_ica_for_a_subset_agrees_mostly(spect_png) -> None:  # noqa: ANN001
    _, truths = spect_png
    with_ica = [t for t in truths if t.ica_stenosis is not None]
    assert 0.35 < len(with_ica) / len(truths) < 0.85
    agree = []
    for t in with_ica:
        assert set(t.ica_stenosis) == {"LM", "LAD", "LCX", "RCA"}
        assert all(0 <= v <= 100 for v in t.ica_stenosis.values())
        obstructive = ica_obstructive(t.ica_stenosis)
        agree += [obstructive[v] == t.territory_abnormal[v] for v in ("LAD", "LCX", "RCA")]
    assert 0.7 < np.mean(agree) < 1.0


def test_spect_dicom_pair_shares_the_study(tmp_path: Path) -> None:
    truths = generate_spect_cohort(tmp_path, n_patients=2, size=40, seed=1, fmt="dicom")
    for t in truths:
        rest, stress = pydicom.dcmread(t.rest_path), pydicom.dcmread(t.stress_path)
        for ds in (rest, stress):
            assert ds.SOPClassUID == SC_SOP_CLASS and ds.Modality == "NM"
            assert ds.pixel_array.shape == (40, 40) and ds.pixel_array.dtype == np.uint8
            assert ds.PatientAge == f"{t.age:03d}Y" and ds.PatientSex == t.sex
            assert float(ds.PatientWeight) == pytest.approx(t.weight_kg)
            assert float(ds.PatientSize) == pytest.approx(t.height_cm / 100, abs=0.01)
            _assert_phi(ds)
        assert rest.SeriesDescription == "REST POLAR MAP"
        assert stress.SeriesDescription == "STRESS POLAR MAP"
        assert rest.StudyInstanceUID == stress.StudyInstanceUID
        assert rest.SeriesInstanceUID != stress.SeriesInstanceUID


def test_spect_is_deterministic_from_seed(tmp_path: Path) -> None:
    a = generate_spect_cohort(tmp_path / "a", n_patients=4, size=32, seed=9, fmt="png")
    b = generate_spect_cohort(tmp_path / "b", n_patients=4, size=32, seed=9, fmt="png")
    c = generate_spect_cohort(tmp_path / "c", n_patients=4, size=32, seed=10, fmt="png")
    for x, y in zip(a, b, strict=True):
        for path in ("rest_path", "stress_path"):
            np.testing.assert_array_equal(
                np.asarray(Image.open(getattr(x, path))), np.asarray(Image.open(getattr(y, path)))
            )
    drop_paths = {"rest_path": None, "stress_path": None}
    assert [dataclasses.replace(x, **drop_paths) for x in a] == [dataclasses.replace(y, **drop_paths) for y in b]
    assert not np.array_equal(np.asarray(Image.open(a[0].rest_path)), np.asarray(Image.open(c[0].rest_path)))


def test_spect_difficulty_changes_the_pictures_only(spect_png, spect_png_easy) -> None:  # noqa: ANN001
    """A seed's patients, scores and ICA are the same at every difficulty; easy draws no artefacts or faint defects."""
    easy, hard = spect_png_easy[1], spect_png[1]
    for e, h in zip(easy, hard, strict=True):
        assert (e.patient_name, e.age, e.sex, e.stress_scores, e.rest_scores, e.ica_stenosis) == (
            h.patient_name,
            h.age,
            h.sex,
            h.stress_scores,
            h.rest_scores,
            h.ica_stenosis,
        )
        assert e.second_reader_stress_scores == h.second_reader_stress_scores
    assert all(t.artefact == "" and t.faint_territories == () for t in easy)
    assert 0.15 < np.mean([bool(t.artefact) for t in hard]) < 0.6
    assert any(t.faint_territories for t in hard)
    differs = [
        not np.array_equal(np.asarray(Image.open(e.stress_path)), np.asarray(Image.open(h.stress_path)))
        for e, h in zip(easy, hard, strict=True)
    ]
    assert all(differs)


@pytest.mark.parametrize("knob", [f.name for f in dataclasses.fields(SpectDifficulty)])
def test_every_spect_knob_changes_the_pictures(tmp_path: Path, knob: str) -> None:
    easy = SPECT_DIFFICULTIES["easy"]
    turned = dataclasses.replace(easy, **{knob: getattr(SPECT_DIFFICULTIES["hard"], knob)})
    if knob in ("faint_defect_rate", "artefact_rate"):
        turned = dataclasses.replace(turned, **{knob: 1.0})  # every patient, so a small cohort shows it
    base = generate_spect_cohort(tmp_path / "e", n_patients=6, size=32, seed=4, fmt="png", difficulty=easy)
    other = generate_spect_cohort(tmp_path / "k", n_patients=6, size=32, seed=4, fmt="png", difficulty=turned)
    assert [t.stress_scores for t in base] == [t.stress_scores for t in other]
    changed = [
        not np.array_equal(np.asarray(Image.open(x.stress_path)), np.asarray(Image.open(y.stress_path)))
        for x, y in zip(base, other, strict=True)
    ]
    assert any(changed)


def test_attenuation_artefacts_darken_the_inferior_wall_in_men_and_the_anterior_wall_in_women(tmp_path: Path) -> None:
    easy = SPECT_DIFFICULTIES["easy"]
    with_artefacts = dataclasses.replace(easy, artefact_rate=1.0)
    plain = generate_spect_cohort(tmp_path / "p", n_patients=24, size=48, seed=6, fmt="png", difficulty=easy)
    shaded = generate_spect_cohort(tmp_path / "a", n_patients=24, size=48, seed=6, fmt="png", difficulty=with_artefacts)
    seg = segment_map(48)
    inferior, anterior = np.isin(seg, [4, 10]), np.isin(seg, [1, 7])
    seen = set()
    for p, a in zip(plain, shaded, strict=True):
        assert a.artefact in ("inferior", "anterior") and a.stress_scores == p.stress_scores
        if a.sex == "F":
            assert a.artefact == "anterior"
        seen.add((a.sex, a.artefact))
        wall = inferior if a.artefact == "inferior" else anterior
        other = anterior if a.artefact == "inferior" else inferior
        before = np.asarray(Image.open(p.stress_path), float)
        after = np.asarray(Image.open(a.stress_path), float)
        # Relative to the opposite wall, the shaded wall loses counts the scores do not explain.
        assert after[wall].mean() / after[other].mean() < before[wall].mean() / before[other].mean() - 0.03
    assert {("M", "inferior"), ("F", "anterior")} <= seen


@pytest.mark.parametrize("share", [0.05, 0.2])
def test_second_reader_disagrees_in_the_requested_share(tmp_path: Path, share: float) -> None:
    truths = generate_spect_cohort(tmp_path, n_patients=60, size=16, seed=8, fmt="png", reader_disagreement=share)
    first = np.array([t.stress_scores for t in truths])
    second = np.array([t.second_reader_stress_scores for t in truths])
    rest = np.array([t.second_reader_rest_scores for t in truths])
    differs = first != second
    assert abs(differs.mean() - share) < 0.02
    assert np.abs(first - second).max() == 1 and second.min() >= 0 and second.max() <= 4
    assert (rest <= second).all() and (rest <= np.array([t.rest_scores for t in truths])).all()
    # Mild and moderate segments are where readers differ most.
    borderline = np.isin(first, (1, 2))
    assert differs[borderline].mean() > differs[~borderline].mean()
    # Territory calls mostly agree, but not always.
    calls = [territory_abnormal(t.second_reader_stress_scores) == t.territory_abnormal for t in truths]
    assert 0.5 < np.mean(calls) < 1.0


def test_no_second_reader_without_disagreement(tmp_path: Path) -> None:
    truths = generate_spect_cohort(tmp_path, n_patients=3, size=16, seed=8, fmt="png", reader_disagreement=0)
    assert all(t.second_reader_stress_scores is None and t.second_reader_rest_scores is None for t in truths)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"difficulty": "medium"}, "unknown difficulty 'medium'; expected one of easy, hard"),
        ({"difficulty": SPECT_DIFFICULTIES}, "unknown difficulty"),
        ({"reader_disagreement": 1.5}, "reader_disagreement must be between 0 and 1; got 1.5"),
        ({"reader_disagreement": -0.1}, "reader_disagreement"),
        ({"reader_disagreement": "0.1"}, "reader_disagreement"),
    ],
)
def test_spect_cohort_refuses_bad_settings_before_writing(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        generate_spect_cohort(tmp_path / "never", n_patients=1, size=16, fmt="png", **kwargs)
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize(
    ("knob", "value", "message"),
    [
        ("noise", -1.0, "noise must be between 0 and 10; got -1.0"),
        ("defect_contrast", 2.5, "defect_contrast must be between 0 and 2; got 2.5"),
        ("contrast_spread", 1.0, "contrast_spread must be between 0 and 0.95"),
        ("faint_defect_rate", 1.2, "faint_defect_rate must be between 0 and 1"),
        ("artefact_rate", float("nan"), "artefact_rate must be a number between 0 and 1; got nan"),
        ("score_jitter", "0.5", "score_jitter must be a number between 0 and 2; got '0.5'"),
        ("intensity_jitter", True, "intensity_jitter must be a number"),
        ("misregistration_deg", 90, "misregistration_deg must be between 0 and 45; got 90"),
    ],
)
def test_spect_difficulty_knobs_are_checked(knob: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        SpectDifficulty(**{knob: value})
    with pytest.raises(ValueError, match=re.escape(message)):
        dataclasses.replace(SPECT_DIFFICULTIES["easy"], **{knob: value})


# --- truth JSON and CLI -------------------------------------------------------------------


def test_truth_json_round_trips_every_kind(tmp_path: Path, xa_cohort: list) -> None:
    oct_truths = generate_oct_cohort(tmp_path / "oct", n_pullbacks=1, frames=8, size=40, seed=2)
    spect_truths = generate_spect_cohort(tmp_path / "spect", n_patients=2, size=32, fmt="png")
    assert spect_truths[0].second_reader_stress_scores is not None
    for truths, name in ((xa_cohort, "xa"), (oct_truths, "oct"), (spect_truths, "spect")):
        path = write_truth_json(truths, tmp_path / "truth" / f"{name}.json")
        back = read_truth_json(path)
        assert len(back) == len(truths)
        for original, restored in zip(truths, back, strict=True):
            assert type(restored) is type(original)
            for field in (
                "patient_id",
                "frames",
                "vessel",
                "territory_abnormal",
                "stress_scores",
                "ica_stenosis",
                "frame_quality",
                "second_reader_stress_scores",
                "second_reader_rest_scores",
                "artefact",
                "faint_territories",
            ):
                if hasattr(original, field):
                    assert getattr(restored, field) == getattr(original, field)
            if hasattr(original, "masks"):
                np.testing.assert_array_equal(restored.masks, original.masks)
                assert restored.path.resolve() == original.path.resolve()
    text = (tmp_path / "truth" / "oct.json").read_text()
    assert '"kind": "oct_pullback"' in text and ".npz" in text
    assert '"second_reader_stress_scores": [' in (tmp_path / "truth" / "spect.json").read_text()


def test_truth_json_without_the_second_reader_still_reads(tmp_path: Path) -> None:
    """Truth files written before the second reader existed load with its fields empty."""
    truths = generate_spect_cohort(tmp_path / "spect", n_patients=1, size=16, fmt="png")
    path = write_truth_json(truths, tmp_path / "truth.json")
    doc = json.loads(path.read_text())
    for key in ("second_reader_stress_scores", "second_reader_rest_scores", "artefact", "faint_territories"):
        del doc["items"][0][key]
    path.write_text(json.dumps(doc))
    (old,) = read_truth_json(path)
    assert old.stress_scores == truths[0].stress_scores
    assert (old.second_reader_stress_scores, old.artefact, old.faint_territories) == (None, "", ())


def test_cli_writes_files_and_truth_outside_the_import_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "import" / "spect"
    assert (
        cli_main(
            [
                "--task",
                "spect_territory",
                "--out",
                str(out),
                "--n",
                "3",
                "--size",
                "32",
                "--format",
                "png",
                "--seed",
                "4",
            ]
        )
        == 0
    )
    truth = tmp_path / "import" / "truth-spect_territory.json"
    assert truth.exists() and (out / "manifest.csv").exists()
    assert not list(out.glob("*.json"))
    printed = capsys.readouterr().out.strip()
    assert "\n" not in printed and "3 SPECT patients" in printed
    assert len(read_truth_json(truth)) == 3


def test_cli_passes_the_spect_knobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--task", "spect_territory", "--n", "4", "--size", "24", "--format", "png", "--seed", "2"]
    assert (
        cli_main([*base, "--out", str(tmp_path / "a" / "s"), "--artefact-rate", "1", "--reader-disagreement", "0.3"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "hard with artefact_rate=1" in printed and "4 with attenuation artefacts" in printed
    truths = read_truth_json(tmp_path / "a" / "truth-spect_territory.json")
    assert all(t.artefact for t in truths)
    share = np.mean(
        [a != b for t in truths for a, b in zip(t.stress_scores, t.second_reader_stress_scores, strict=True)]
    )
    assert abs(share - 0.3) < 0.06
    assert (
        cli_main([*base, "--out", str(tmp_path / "b" / "s"), "--difficulty", "easy", "--reader-disagreement", "0"]) == 0
    )
    truths = read_truth_json(tmp_path / "b" / "truth-spect_territory.json")
    assert all(t.artefact == "" and t.second_reader_stress_scores is None for t in truths)


def test_cli_refuses_bad_spect_knobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--task", "spect_territory", "--out", str(tmp_path / "s"), "--n", "2", "--size", "16"]
    assert cli_main([*base, "--noise", "20"]) == 2
    assert "noise must be between 0 and 10; got 20.0" in capsys.readouterr().err
    assert cli_main([*base, "--reader-disagreement", "2"]) == 2
    assert "reader_disagreement must be between 0 and 1" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
    with pytest.raises(SystemExit):
        cli_main([*base, "--difficulty", "medium"])
    assert cli_main(["--task", "oct_calcium", "--out", str(tmp_path / "o"), "--score-jitter", "0.2"]) == 2
    assert "--score-jitter: only available for spect_territory" in capsys.readouterr().err


# --- XA "neither" runs ----------------------------------------------------------------------


def test_neither_rate_zero_leaves_the_cohort_unchanged(xa_cohort: list, tmp_path: Path) -> None:
    same = generate_xa_cohort(
        tmp_path / "z", n_patients=2, runs_per_patient=3, frames=(5, 7), size=48, seed=7, neither_rate=0.0
    )
    assert [t.vessel for t in same] == [t.vessel for t in xa_cohort]
    np.testing.assert_array_equal(
        pydicom.dcmread(same[-1].path).pixel_array, pydicom.dcmread(xa_cohort[-1].path).pixel_array
    )


def test_neither_runs_come_in_every_kind_and_round_trip(tmp_path: Path) -> None:
    truths = generate_xa_cohort(
        tmp_path / "n", n_patients=8, runs_per_patient=3, frames=(4, 5), size=40, seed=2, neither_rate=0.5
    )
    neither = [t for t in truths if t.vessel == "neither"]
    assert 4 <= len(neither) <= 20
    assert {t.neither_kind for t in neither} == {"aortogram", "ventriculogram", "no_fill"}
    assert all(t.neither_kind == "" for t in truths if t.vessel != "neither")
    back = read_truth_json(write_truth_json(truths, tmp_path / "truth.json"))
    assert [(t.vessel, t.neither_kind) for t in back] == [(t.vessel, t.neither_kind) for t in truths]


def test_neither_kinds_opacify_what_they_should() -> None:
    """Aortograms and ventriculograms fill wide structures, a coronary tree only thin lines, a no-fill run a puff."""
    opacified = {}
    for vessel, kind in (
        ("LCA", None),
        ("aortogram", "aortogram"),
        ("ventriculogram", "ventriculogram"),
        ("no_fill", "no_fill"),
    ):
        r = render_xa_run(
            vessel="neither" if kind else vessel, rng=np.random.default_rng(9), frames=20, size=96, neither_kind=kind
        )
        assert r.neither_kind == (kind or "")
        opacified[vessel] = float((r.vessel_mm > 1.0).mean())
    assert opacified["ventriculogram"] > 0.3 and opacified["aortogram"] > 0.1
    assert opacified["LCA"] < 0.08 and opacified["no_fill"] < 0.15


def test_neither_runs_are_filmed_in_coronary_views() -> None:
    """C-arm geometry cannot single out a neither run: its views overlap both coronary distributions."""
    rng = np.random.default_rng(3)
    angles = {v: np.array([sample_view(v, rng).primary_angle for _ in range(600)]) for v in ("LCA", "RCA", "neither")}
    assert angles["LCA"].mean() < angles["neither"].mean() < angles["RCA"].mean()


def test_neither_knob_refuses_bad_values(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="neither_rate"):
        generate_xa_cohort(tmp_path, n_patients=1, neither_rate=1.5)
    with pytest.raises(ValueError, match="neither_kind"):
        render_xa_run(vessel="LCA", rng=np.random.default_rng(0), frames=2, size=32, neither_kind="aortogram")
    with pytest.raises(ValueError, match="unknown vessel"):
        render_xa_run(vessel="LAD", rng=np.random.default_rng(0), frames=2, size=32)
    assert cli_main(["--task", "oct_calcium", "--out", str(tmp_path / "o"), "--neither-rate", "0.2"]) == 2


def test_cli_writes_neither_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--task", "vessel_type", "--out", str(tmp_path / "xa"), "--n", "3", "--size", "32", "--frames", "4"]
    assert cli_main([*args, "--neither-rate", "1"]) == 0
    assert "12 XA runs of 3 patients (0 LCA, 0 RCA, 12 neither)" in capsys.readouterr().out
    truths = read_truth_json(tmp_path / "truth-vessel_type.json")
    assert {t.vessel for t in truths} == {"neither"}


# --- XA generalisation knobs: view mix, angle jitter, noise, table panning ---------------------

_PINNED_KW = {"n_patients": 2, "runs_per_patient": 3, "frames": (3, 5), "size": 32, "seed": 5, "neither_rate": 0.4}
# SHA-256 of this cohort's PixelData and truth JSON, written by the generator before the knobs existed.
_PINNED_PIXELS = "552de6d036eb708381611280d769acf961ec7fb3d93cd8df76bb2ba7aefbddbc"
_PINNED_TRUTH = "50e6422cab1b6cd7c0e5604caf70fb113451530d7f8ee5afa43cad1589ac9cc9"


def _digests(truths: list, truth_path: Path) -> tuple[str, str]:
    """Return SHA-256 of the cohort's pixel data (in run order) and of its truth JSON."""
    pixels = hashlib.sha256(b"".join(pydicom.dcmread(t.path).PixelData for t in truths)).hexdigest()
    return pixels, hashlib.sha256(write_truth_json(truths, truth_path).read_bytes()).hexdigest()


def test_xa_knobs_at_their_defaults_leave_the_cohort_byte_identical(tmp_path: Path) -> None:
    omitted = generate_xa_cohort(tmp_path / "a" / "xa", **_PINNED_KW)
    explicit = generate_xa_cohort(
        tmp_path / "b" / "xa", **_PINNED_KW, view_mix="standard", angle_jitter_deg=0.0, noise=1.0, table_panning=0.0
    )
    for a, b in zip(omitted, explicit, strict=True):
        assert a.path.read_bytes() == b.path.read_bytes()
    assert _digests(omitted, tmp_path / "a" / "truth.json") == _digests(explicit, tmp_path / "b" / "truth.json")
    # Pinned against the generator before the knobs: a mismatch means the default output changed
    # (or numpy changed its random streams or float kernels; then regenerate with the old code).
    assert _digests(omitted, tmp_path / "a" / "truth.json") == (_PINNED_PIXELS, _PINNED_TRUTH)


def test_xa_knobs_keep_patients_vessels_and_runs(tmp_path: Path) -> None:
    """Every knob draws from its own stream: the same seed gives the same exams, only the pictures change."""
    kw = {"n_patients": 3, "runs_per_patient": 3, "frames": (3, 4), "size": 32, "seed": 4}
    base = generate_xa_cohort(tmp_path / "a", **kw)
    varied = generate_xa_cohort(
        tmp_path / "b", **kw, view_mix="atypical", angle_jitter_deg=10.0, noise=2.0, table_panning=5.0
    )

    def exam(t):  # noqa: ANN001, ANN202
        return (t.sop_instance_uid, t.vessel, t.frames, t.frame_time_ms, t.heart_rate_bpm)

    assert [exam(t) for t in varied] == [exam(t) for t in base]
    assert all(a.primary_angle != b.primary_angle for a, b in zip(base, varied, strict=True))
    assert pydicom.dcmread(varied[0].path).PositionerPrimaryAngle == f"{varied[0].primary_angle:.1f}"


def _angle_auc(runs: list) -> float:
    """Return the cross-validated AUC of a logistic regression (quadratic terms) predicting LCA from the two angles.

    runs are (vessel, view) pairs or XA truths.
    """
    pairs = [run if isinstance(run, tuple) else (run.vessel, run) for run in runs]
    x = np.array([[view.primary_angle, view.secondary_angle] for _, view in pairs])
    y = np.array([vessel == "LCA" for vessel, _ in pairs])
    model = make_pipeline(PolynomialFeatures(2), StandardScaler(), LogisticRegression(max_iter=1000))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    return float(cross_val_score(model, x, y, cv=folds, scoring="roc_auc").mean())


def test_atypical_view_mix_makes_the_angles_separate_the_vessels_worse(tmp_path: Path) -> None:
    kw = {"n_patients": 50, "runs_per_patient": 4, "frames": (1, 1), "size": 16, "seed": 0}
    standard = _angle_auc(generate_xa_cohort(tmp_path / "s", **kw))
    atypical = _angle_auc(generate_xa_cohort(tmp_path / "a", **kw, view_mix="atypical"))
    assert standard > 0.85  # about 0.92
    assert atypical < standard - 0.15 and atypical > 0.5  # about 0.6: the angles still say a little


def test_pooled_views_and_angle_jitter_blur_the_vessels_apart() -> None:
    rng = np.random.default_rng(1)
    vessels = ["LCA" if rng.random() < 0.6 else "RCA" for _ in range(600)]

    def auc(mix: str, jitter: float) -> float:
        return _angle_auc([(v, jitter_view(sample_view(v, rng, mix), rng, jitter)) for v in vessels])

    standard = auc("standard", 0.0)
    assert auc("pooled", 0.0) < 0.62 < standard - 0.25
    assert auc("standard", 15.0) < standard - 0.1
    assert set(VIEW_MIXES) == {"standard", "atypical", "pooled"}
    jittered = [jitter_view(sample_view("RCA", rng), rng, 30.0) for _ in range(300)]
    assert all(-60 <= v.primary_angle <= 90 and -45 <= v.secondary_angle <= 45 for v in jittered)
    assert all(880 <= v.source_to_detector_mm <= 1200 for v in jittered)


def _background_noise_sd(truths: list) -> float:
    """Return a robust SD of the frame-to-frame change of the pixels (the static background's noise)."""
    diffs = [np.diff(pydicom.dcmread(t.path).pixel_array.astype(float), axis=0).ravel() for t in truths]
    return float(1.4826 * np.median(np.abs(np.concatenate(diffs))) / np.sqrt(2))


def test_noise_knob_scales_the_background_noise(tmp_path: Path) -> None:
    kw = {"n_patients": 1, "runs_per_patient": 2, "frames": (6, 6), "size": 48, "seed": 3}
    sd = {
        noise: _background_noise_sd(generate_xa_cohort(tmp_path / str(noise), **kw, noise=noise))
        for noise in (0, 1, 2.5)
    }
    assert sd[0] == 0.0  # the background is static: without noise only the beating tree changes
    assert sd[1] > 2.0  # gray levels of 255
    assert 2.0 < sd[2.5] / sd[1] < 3.2


def _shift_between(a: np.ndarray, b: np.ndarray, reach: int) -> tuple[int, int]:
    """Return the whole-pixel (rows, cols) move that best maps picture a onto picture b."""
    n, m = a.shape[0], reach + 2
    inner = b[m : n - m, m : n - m].astype(float)
    errors = {
        (dr, dc): np.abs(a[m - dr : n - m - dr, m - dc : n - m - dc] - inner).mean()
        for dr in range(-reach, reach + 1)
        for dc in range(-reach, reach + 1)
    }
    return min(errors, key=errors.__getitem__)


def test_table_panning_moves_the_picture_by_the_set_amount(tmp_path: Path) -> None:
    kw = {"n_patients": 1, "runs_per_patient": 3, "frames": (10, 14), "size": 64, "seed": 6, "noise": 0.0}
    still = generate_xa_cohort(tmp_path / "still", **kw)
    panned = generate_xa_cohort(tmp_path / "panned", **kw, table_panning=10.0)
    moves = []
    for a, b in zip(still, panned, strict=True):
        first, last = pydicom.dcmread(a.path).pixel_array, pydicom.dcmread(b.path).pixel_array
        assert _shift_between(first[0], last[0], 13) == (0, 0)  # the pan starts after the first frame
        moves.append(_shift_between(first[-1], last[-1], 13))  # the tree, the catheter and the chest
    assert all(abs(np.hypot(*move) - 10) <= 1.5 for move in moves)
    assert len({np.sign(move).tobytes() for move in map(np.array, moves)}) > 1  # random directions
    panned_render = render_xa_run(vessel="RCA", rng=np.random.default_rng(2), frames=8, size=48, table_panning=6.0)
    assert panned_render.frames.shape == (8, 48, 48) and panned_render.vessel_mm.shape == (48, 48)


def test_xa_cohort_makes_512_pixel_long_runs(tmp_path: Path) -> None:
    (truth,) = generate_xa_cohort(tmp_path, n_patients=1, runs_per_patient=1, frames=(60, 90), size=512, seed=1)
    ds = pydicom.dcmread(truth.path)
    assert 60 <= int(ds.NumberOfFrames) == truth.frames <= 90
    assert (ds.Rows, ds.Columns) == (512, 512)
    pixels = ds.pixel_array
    assert pixels.shape == (truth.frames, 512, 512) and pixels.std() > 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"view_mix": "oblique"}, "view_mix must be one of standard, atypical, pooled; got 'oblique'"),
        ({"view_mix": None}, "view_mix must be one of"),
        ({"angle_jitter_deg": -1.0}, "angle_jitter_deg must be between 0 and 30 degrees; got -1.0"),
        ({"angle_jitter_deg": 31}, "angle_jitter_deg must be between 0 and 30 degrees"),
        ({"angle_jitter_deg": "5"}, "angle_jitter_deg must be a number between 0 and 30"),
        ({"noise": -0.1}, "noise must be between 0 and 10; got -0.1"),
        ({"noise": float("nan")}, "noise must be a number between 0 and 10"),
        ({"noise": True}, "noise must be a number"),
        ({"table_panning": -2.0}, "table_panning must be between 0 and 16 pixels"),
        ({"table_panning": 17.0}, r"table_panning must be between 0 and 16 pixels \(half the image size 32\)"),
        ({"neither_rate": 1.5}, "neither_rate must be between 0 and 1; got 1.5"),
        ({"size": 8}, "size must be an integer between 16 and 2048; got 8"),
        ({"frames": (0, 4)}, "frames must satisfy 1 <= min <= max <= 1000"),
        ({"frames": (6, 4)}, "frames must satisfy 1 <= min <= max"),
        ({"frames": 5}, "frames must be a \\(min, max\\) pair"),
        ({"runs_per_patient": 0}, "runs_per_patient must be an integer between 1 and 99"),
    ],
)
def test_xa_knobs_refuse_bad_values_before_writing(tmp_path: Path, kwargs: dict, message: str) -> None:
    settings = {"n_patients": 1, "runs_per_patient": 1, "frames": (2, 3), "size": 32, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate_xa_cohort(tmp_path / "xa", **settings)
    assert not (tmp_path / "xa").exists()


def test_render_xa_run_checks_its_knobs() -> None:
    with pytest.raises(ValueError, match="noise must be between 0 and 10"):
        render_xa_run(vessel="LCA", rng=np.random.default_rng(0), frames=2, size=32, noise=11.0)
    with pytest.raises(ValueError, match="table_panning must be between 0 and 16 pixels"):
        render_xa_run(vessel="LCA", rng=np.random.default_rng(0), frames=2, size=32, table_panning=20.0)
    with pytest.raises(ValueError, match="frames must be an integer between 1 and 1000"):
        render_xa_run(vessel="LCA", rng=np.random.default_rng(0), frames=0, size=32)


def test_cli_passes_the_xa_knobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    knobs = ["--view-mix", "atypical", "--angle-jitter-deg", "5", "--noise", "2", "--table-panning", "4"]
    args = ["--task", "vessel_type", "--out", str(tmp_path / "cli" / "xa"), "--n", "2", "--size", "32", "--seed", "3"]
    assert cli_main([*args, "--frames", "4", "6", *knobs]) == 0
    printed = capsys.readouterr().out
    assert "8 XA runs of 2 patients" in printed
    assert "with view_mix=atypical, angle_jitter_deg=5, table_panning=4, noise=2" in printed
    truths = read_truth_json(tmp_path / "cli" / "truth-vessel_type.json")
    same = generate_xa_cohort(
        tmp_path / "api",
        n_patients=2,
        frames=(4, 6),
        size=32,
        seed=3,
        view_mix="atypical",
        angle_jitter_deg=5.0,
        noise=2.0,
        table_panning=4.0,
    )
    assert {t.frames for t in truths} <= {4, 5, 6}
    for a, b in zip(truths, same, strict=True):
        assert a.path.read_bytes() == b.path.read_bytes()


def test_cli_refuses_bad_xa_knobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--task", "vessel_type", "--out", str(tmp_path / "xa"), "--n", "1", "--size", "32", "--frames", "3"]
    assert cli_main([*base, "--noise", "20"]) == 2
    assert "vessel_type: noise must be between 0 and 10; got 20.0" in capsys.readouterr().err
    assert cli_main([*base, "--table-panning", "40"]) == 2
    assert "table_panning must be between 0 and 16 pixels (half the image size 32); got 40.0" in capsys.readouterr().err
    assert cli_main([*base, "--angle-jitter-deg", "-3"]) == 2
    assert "angle_jitter_deg must be between 0 and 30 degrees" in capsys.readouterr().err
    assert cli_main([*base[:-1], "6", "4"]) == 2
    assert "frames must satisfy 1 <= min <= max" in capsys.readouterr().err
    assert not (tmp_path / "xa").exists()
    with pytest.raises(SystemExit):
        cli_main([*base, "--view-mix", "oblique"])
    oct_args = ["--task", "oct_calcium", "--out", str(tmp_path / "o")]
    assert cli_main([*oct_args, "--view-mix", "atypical", "--table-panning", "3"]) == 2
    assert "--view-mix, --table-panning: only available for vessel_type" in capsys.readouterr().err
    assert cli_main([*oct_args, "--noise", "2"]) == 2
    assert "--noise: only available for vessel_type and spect_territory" in capsys.readouterr().err
    assert cli_main([*oct_args, "--frames", "8", "12"]) == 2
    assert cli_main([*base, "--difficulty", "easy"]) == 2
    assert "--difficulty: only available for spect_territory" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
