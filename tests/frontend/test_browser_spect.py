"""In a real browser: the SPECT territory tool scores segments, rolls them up live and stores the label."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from annotation.ingest.sources import ArchiveLimits, sources_from_path
from annotation.models import IcaReference, Item, Label, ModelStatus, ModelVersion, Prediction
from annotation.services import import_run
from learning.cohorts import generate_spect_cohort
from learning.cohorts.territories import segment_of
from learning.domain import SEGMENT_TERRITORY, ica_obstructive
from learning.spect_scoring import patient_abnormal, territory_flags, territory_rollup
from tests.frontend.test_browser_import import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

READY = "#workspace[data-state='ready']"


@pytest.fixture
def spect_items(spect_project, tmp_path):
    """Import two synthetic patients (PNG polar maps + manifest) and return their items."""
    cohort = tmp_path / "cohort"
    generate_spect_cohort(cohort, n_patients=2, size=96, seed=5, fmt="png")
    report = import_run(project=spect_project, sources=sources_from_path(cohort, limits=ArchiveLimits(members=100)))
    assert report.summary()["items_created"] == 2, report.as_json()
    return list(Item.objects.filter(project=spect_project).order_by("id"))


def open_workspace(page, live_server, project, item=None) -> int:
    query = f"?item={item.pk}" if item else ""
    page.goto(f"{live_server.url}/projects/{project.slug}/label/{query}")
    page.wait_for_selector(READY)
    page.wait_for_selector("#spect-stress-eye [data-segment='17']")
    return int(page.get_attribute("#workspace", "data-item-id"))


def eye_scores(page, phase: str) -> list[int]:
    return [int(page.get_attribute(f"#spect-{phase}-eye [data-segment='{s}']", "data-score")) for s in range(1, 18)]


def territory_row(page, territory: str) -> dict:
    row = page.locator(f"#spect-territories tr[data-territory='{territory}']")
    return {
        "sss": int(row.locator("td.sss").inner_text()),
        "srs": int(row.locator("td.srs").inner_text()),
        "sds": int(row.locator("td.sds").inner_text()),
        "abnormal": row.get_attribute("data-abnormal") == "true",
        "overridden": row.get_attribute("data-overridden") == "true",
    }


def assert_table_matches(page, stress: list[int], rest: list[int], overrides: dict) -> None:
    rollup = territory_rollup(stress, rest)
    flags = territory_flags(rollup, overrides)
    for name, score in rollup.items():
        shown = territory_row(page, name)
        assert (shown["sss"], shown["srs"], shown["sds"]) == (score.sss, score.srs, score.sds), name
        assert shown["abnormal"] == flags[name], name
    assert page.get_attribute("#spect-patient", "data-abnormal") == str(patient_abnormal(rollup, overrides)).lower()


def with_scores(**by_segment: int) -> list[int]:
    out = [0] * 17
    for key, value in by_segment.items():
        out[int(key[1:]) - 1] = value
    return out


def test_annotator_scores_with_mouse_and_keyboard_overrides_with_a_reason_and_submits(
    page, live_server, annotator, spect_project, spect_items, screenshot
):
    log_in(page, live_server, annotator.username)
    item_id = open_workspace(page, live_server, spect_project)
    assert page.locator("#spect-ica-form").count() == 0  # only leads enter the ICA reference
    assert page.locator("#spect-clinical").inner_text().count("—") < 5  # the manifest's clinical features
    assert eye_scores(page, "stress") == [0] * 17 and eye_scores(page, "rest") == [0] * 17
    assert_table_matches(page, [0] * 17, [0] * 17, {})

    # Mouse: each click raises a segment's score by one; a right click lowers it (0 wraps to 4).
    stress_eye = "#spect-stress-eye [data-segment='{}']"
    page.click(stress_eye.format(4))
    page.click(stress_eye.format(4))
    page.click(stress_eye.format(10))
    assert territory_row(page, "RCA") == {"sss": 3, "srs": 0, "sds": 3, "abnormal": False, "overridden": False}
    page.click(stress_eye.format(15))
    assert territory_row(page, "RCA")["sss"] == 4 and territory_row(page, "RCA")["abnormal"]  # flagged live at 4
    assert page.get_attribute("#spect-patient", "data-abnormal") == "true"
    page.click(stress_eye.format(16), button="right")
    assert territory_row(page, "LCX")["sss"] == 4 and territory_row(page, "LCX")["abnormal"]
    page.click(stress_eye.format(16), button="right")
    assert territory_row(page, "LCX") == {"sss": 3, "srs": 0, "sds": 3, "abnormal": False, "overridden": False}
    # The tool says how the mouse scores, and Shift-click lowers as it says.
    assert "Shift-click or right-click lowers it" in page.locator("#spect-click-hint").inner_text()
    page.click(stress_eye.format(16), modifiers=["Shift"])
    assert territory_row(page, "LCX")["sss"] == 2
    page.click(stress_eye.format(16))
    assert territory_row(page, "LCX")["sss"] == 3

    # Keyboard: the selection is on stress 16; → moves to 17, a digit scores and moves on to the next segment.
    page.keyboard.press("ArrowRight")
    page.keyboard.press("2")
    page.keyboard.press("1")
    assert "Stress segment 2" in page.inner_text("#spect-selected")
    page.keyboard.press("c")  # copy stress → rest
    page.keyboard.press("t")  # now scoring rest
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("0")
    page.click("#spect-rest-eye [data-segment='4']", button="right")  # rest 4: 2 → 1
    stress = with_scores(s1=1, s4=2, s10=1, s15=1, s16=3, s17=2)
    rest = with_scores(s4=1, s10=1, s15=1, s16=3, s17=2)
    assert eye_scores(page, "stress") == stress and eye_scores(page, "rest") == rest
    assert_table_matches(page, stress, rest, {})
    assert territory_row(page, "LAD")["abnormal"] is False  # LAD SSS 3

    # An override needs a reason: refused without one, accepted with one.
    page.click("#spect-territories tr[data-territory='LAD'] button.override")
    page.select_option("#spect-override-flag", "true")
    page.click("#spect-override button[type=submit]")
    assert "reason" in page.inner_text("#spect-override-error")
    assert territory_row(page, "LAD")["overridden"] is False
    page.fill("#spect-override-reason", "apical anterior defect on the raw images")
    page.click("#spect-override button[type=submit]")
    assert page.locator("#spect-override").is_hidden()
    overrides = {"LAD": {"abnormal": True, "reason": "apical anterior defect on the raw images"}}
    assert territory_row(page, "LAD")["overridden"] and territory_row(page, "LAD")["abnormal"]
    assert_table_matches(page, stress, rest, overrides)
    screenshot("spect-tool")

    page.keyboard.press("Enter")
    page.wait_for_selector("#workspace[data-last-label-id]")
    page.wait_for_selector(f"{READY}:not([data-item-id='{item_id}'])")  # the queue's next item is open
    label = Label.objects.get(item_id=item_id, author=annotator, superseded_at__isnull=True)
    assert label.payload == {"stress": stress, "rest": rest, "flag_overrides": overrides}

    # The stored label comes back into the tool when the item is opened again.
    page.goto(f"{live_server.url}/projects/{spect_project.slug}/label/?item={item_id}")
    page.wait_for_selector(READY)
    page.wait_for_selector("#spect-stress-eye [data-segment='17']")
    assert eye_scores(page, "stress") == stress and eye_scores(page, "rest") == rest
    assert territory_row(page, "LAD")["overridden"]
    assert_table_matches(page, stress, rest, overrides)


def test_lead_enters_an_ica_reference_and_it_is_stored(page, live_server, lead, spect_project, spect_items):
    item = spect_items[0]
    log_in(page, live_server, lead.username)
    open_workspace(page, live_server, spect_project, item)
    assert "No ICA reference" in page.inner_text("#spect-ica-values")
    page.fill("#spect-ica-form input[name=stenosis_lm]", "20")
    page.fill("#spect-ica-form input[name=stenosis_lad]", "75")
    page.fill("#spect-ica-form input[name=stenosis_rca]", "40")
    assert "LAD" in page.inner_text("#spect-ica-preview")
    page.click("#spect-ica-form button[type=submit]")
    page.wait_for_selector("#spect-ica-values tr[data-vessel='LAD']")
    assert "75%" in page.inner_text("#spect-ica-values tr[data-vessel='LAD']")
    assert "LAD" in page.inner_text(".spect-ica-obstructive")
    ica = IcaReference.objects.get(item=item)
    assert (ica.stenosis_lm, ica.stenosis_lad, ica.stenosis_lcx, ica.stenosis_rca) == (20, 75, None, 40)
    assert ica.entered_by == lead


def test_annotator_sees_the_ica_reference_read_only(page, live_server, annotator, lead, spect_project, spect_items):
    item = spect_items[0]
    IcaReference.objects.create(
        item=item, stenosis_lm=55, stenosis_lad=10, stenosis_lcx=0, stenosis_rca=80, entered_by=lead
    )
    log_in(page, live_server, annotator.username)
    open_workspace(page, live_server, spect_project, item)
    assert page.locator("#spect-ica-form").count() == 0
    assert "55%" in page.inner_text("#spect-ica-values tr[data-vessel='LM']")
    assert page.inner_text(".spect-ica-obstructive").strip().endswith("LAD, RCA, LCX")


def test_model_prediction_is_hidden_by_default_and_marked_as_the_model_s_when_shown(
    page, live_server, annotator, spect_project, spect_items
):
    item = spect_items[0]
    champion = ModelVersion.objects.create(project=spect_project, number=1, family="spect", status=ModelStatus.CHAMPION)
    Prediction.objects.create(item=item, model_version=champion, output={"LAD": 0.82, "RCA": 0.1, "LCX": 0.35})
    log_in(page, live_server, annotator.username)
    open_workspace(page, live_server, spect_project, item)
    assert page.locator("#spect-prediction").count() == 0
    spect_project.settings = {**spect_project.settings, "show_predictions_to_annotators": True}
    spect_project.save(update_fields=["settings"])
    open_workspace(page, live_server, spect_project, item)
    shown = page.inner_text("#spect-prediction")
    assert "Model prediction v1" in shown and "not a reader's label" in shown
    assert "LAD: 82% abnormal" in shown
    assert eye_scores(page, "stress") == [0] * 17  # the prediction never pre-fills the scores


def score_vectors() -> list[tuple[list[int], list[int], dict]]:
    rng = random.Random(17)
    vectors = [
        ([0] * 17, [0] * 17, {}),
        ([4] * 17, [4] * 17, {"RCA": {"abnormal": False, "reason": "r"}}),
        (with_scores(s1=1, s2=1, s14=1, s17=1), [0] * 17, {}),
        (with_scores(s3=2, s9=1), with_scores(s3=4), {"LCX": {"abnormal": True, "reason": "r"}}),
    ]
    for _ in range(12):
        stress = [rng.choice([0, 0, 0, 1, 2, 3, 4]) for _ in range(17)]
        rest = [min(s, rng.randint(0, 4)) for s in stress]
        overrides = {
            t: {"abnormal": rng.random() < 0.5, "reason": "r"} for t in ("LAD", "RCA", "LCX") if rng.random() < 0.3
        }
        vectors.append((stress, rest, overrides))
    return vectors


def test_js_territory_rollup_agrees_with_python(page, live_server):
    page.goto(f"{live_server.url}/login/")
    cases = score_vectors()
    results = page.evaluate(
        """async (cases) => {
            const t = await import("/static/frontend/lib/territories.js");
            return cases.map(([stress, rest, overrides]) => {
                const rollup = t.territoryRollup(stress, rest);
                const flags = t.territoryFlags(rollup, overrides);
                return { rollup, flags, patient: t.patientAbnormal(rollup, overrides) };
            });
        }""",
        cases,
    )
    for (stress, rest, overrides), js in zip(cases, results, strict=True):
        rollup = territory_rollup(stress, rest)
        expected = {n: {"sss": s.sss, "srs": s.srs, "sds": s.sds, "abnormal": s.abnormal} for n, s in rollup.items()}
        assert js["rollup"] == expected, json.dumps([stress, rest])
        assert js["flags"] == territory_flags(rollup, overrides)
        assert js["patient"] == patient_abnormal(rollup, overrides)


def test_js_ica_obstructive_and_segment_layout_agree_with_python(page, live_server):
    page.goto(f"{live_server.url}/login/")
    stenoses = [
        {"LM": 0, "LAD": 0, "LCX": 0, "RCA": 0},
        {"LM": 50, "LAD": 10, "LCX": 20, "RCA": 69},
        {"LM": 49, "LAD": 70, "LCX": 69, "RCA": 70},
        {"LM": 10, "LAD": 40, "LCX": 95, "RCA": 100},
    ]
    js = page.evaluate(
        """async (cases) => {
            const t = await import("/static/frontend/lib/territories.js");
            const ica = cases.map((c) => t.icaObstructive({
                stenosis_lm: c.LM, stenosis_lad: c.LAD, stenosis_lcx: c.LCX, stenosis_rca: c.RCA,
            }));
            const layout = Array.from({ length: 17 }, (_, i) => ({ ...t.segmentGeometry(i + 1), segment: i + 1 }));
            return { ica, layout, segmentTerritory: t.SEGMENT_TERRITORY };
        }""",
        stenoses,
    )
    for case, result in zip(stenoses, js["ica"], strict=True):
        expected = ica_obstructive(case)
        assert result == {**expected, "any": any(expected.values())}, case

    # Corners just inside each JS segment fall in the same segment of the Python bull's-eye.
    for g in js["layout"]:
        radii = np.array([g["inner"] + 0.01, g["outer"] - 0.01])
        angles = np.array([g["start"] + 1.0, (g["start"] + g["end"]) / 2, g["end"] - 1.0])
        found = segment_of(*np.meshgrid(radii, angles))
        assert (found == g["segment"]).all(), (g, found.tolist())
    assert {int(k): v for k, v in js["segmentTerritory"].items()} == SEGMENT_TERRITORY
