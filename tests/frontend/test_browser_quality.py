"""In a real browser: the leads' quality dashboard draws its plots from the quality reports, exports tables as CSV,
sends work back for review, and the adjudication page settles a disagreement from the annotators' and the model's
answers. Annotators get a 403 page."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from annotation.ingest.sources import ArchiveLimits, sources_from_path
from annotation.models import (
    Adjudication,
    Item,
    Label,
    LabelSource,
    ModelStatus,
    ModelVersion,
    Prediction,
    ReviewRequest,
    Role,
)
from annotation.services import import_run, label_submit, project_update
from learning.cohorts import generate_oct_cohort, generate_spect_cohort
from learning.masks import mask_decode, mask_encode
from tests import dicom_samples as samples
from tests.annotation.test_ingest import run
from tests.factories import MembershipFactory, UserFactory
from tests.frontend.test_browser_import import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DASHBOARD_READY = "#quality[data-state='ready']"
ADJUDICATE_READY = "#adjudicate[data-state='ready']"


def label(item, author, payload, **extra) -> Label:
    return label_submit(item=item, author=author, payload=payload, base_version=None, **extra)


def model_version(project, number: int, status: str, *, labels: int, test: float, metric: str) -> ModelVersion:
    promoted = status in (ModelStatus.CHAMPION, ModelStatus.RETIRED)
    return ModelVersion.objects.create(
        project=project,
        number=number,
        family="metadata_mlp",
        status=status,
        weights_path="w.pt",
        trained_at=timezone.now() - timedelta(hours=10 - number),
        promoted_at=timezone.now() - timedelta(hours=10 - number) if promoted else None,
        metrics={
            "train_examples": labels,
            "pseudo_examples": 0,
            "test": {metric: test, f"{metric}_ci": [round(test - 0.1, 3), round(test + 0.05, 3)], "n": 12},
            "validation": {metric: test - 0.02},
        },
        decision_rule=f"v{number}: test {metric} {test} vs the champion",
    )


def open_dashboard(page, live_server, project) -> None:
    page.goto(f"{live_server.url}/projects/{project.slug}/quality/")
    page.wait_for_selector(DASHBOARD_READY)


def chart(page, name: str):
    return page.locator(f"figure.chart[data-chart='{name}']")


# ---------------------------------------------------------------------------------------------------- vessel type
@pytest.fixture
def vessel_case(vessel_project, annotator, second_annotator):
    """Eight runs: a champion (after a retired and a rejected version) scored five before anyone labelled them;
    two annotators then labelled four: one disagreement (LCA vs RCA), three agreements."""
    project_update(project=vessel_project, settings={"overlap_rate": 0.0})
    run(vessel_project, *[(f"run{i}.dcm", samples.xa_bytes(seed=70 + i, frames=3, size=32)) for i in range(8)])
    items = list(vessel_project.items.order_by("pk"))
    model_version(vessel_project, 1, ModelStatus.RETIRED, labels=4, test=0.55, metric="macro_f1")
    model_version(vessel_project, 2, ModelStatus.REJECTED, labels=6, test=0.5, metric="macro_f1")
    champion = model_version(vessel_project, 3, ModelStatus.CHAMPION, labels=8, test=0.8, metric="macro_f1")
    probabilities = {"LCA": 0.7, "RCA": 0.2, "neither": 0.06, "unusable": 0.04}
    Prediction.objects.create(
        item=items[0],
        model_version=champion,
        output={"vessel": "LCA", "probabilities": probabilities},
        uncertainty=0.3,
        confidence=0.7,
    )
    for n, item in enumerate(items[4:]):
        Prediction.objects.create(
            item=item, model_version=champion, output={"vessel": "RCA"}, uncertainty=0.1 + 0.1 * n, confidence=0.8
        )
    answers = [("LCA", "RCA"), ("LCA", "LCA"), ("LCA", "LCA"), ("RCA", "RCA")]
    for item, (first, other) in zip(items, answers, strict=False):
        label(item, annotator, {"vessel": first}, time_spent_ms=20_000)
        label(item, second_annotator, {"vessel": other}, time_spent_ms=40_000)
    return items


def test_lead_sees_the_plots_exports_csv_and_sends_work_back_for_review(
    page, live_server, lead, annotator, vessel_project, vessel_case, screenshot
):
    log_in(page, live_server, lead.username)
    open_dashboard(page, live_server, vessel_project)

    curve = chart(page, "learning-curve")
    assert curve.get_attribute("data-empty") == "false"
    assert curve.locator("svg[role=img]").get_attribute("aria-label").startswith("Learning curve")
    points = curve.locator("circle.point")
    assert points.count() == 3
    assert [points.nth(i).get_attribute("data-x") for i in range(3)] == ["4", "6", "8"]
    assert curve.locator("circle.point.status-champion").get_attribute("data-y") == "0.8"
    assert curve.locator("circle.point.status-rejected").count() == 1
    assert "human labels trained on" in curve.locator(".axis-label").all_text_contents()

    confusion = chart(page, "confusion")
    disagreement = confusion.locator(".cell[data-row='LCA'][data-col='RCA']")
    assert disagreement.get_attribute("data-count") == "1"
    assert disagreement.locator("text").text_content() == "1"
    assert disagreement.locator("title").text_content() == "1 item: first said LCA, second said RCA"
    assert confusion.locator(".cell[data-row='LCA'][data-col='LCA'] text").text_content() == "2"
    assert confusion.locator(".cell[data-row='RCA'][data-col='RCA']").get_attribute("data-count") == "1"
    assert confusion.locator(".cell[data-row='RCA'][data-col='LCA']").get_attribute("data-count") == "0"

    uncertainty = chart(page, "queue-uncertainty")
    bars = uncertainty.locator("rect.bar")
    counts = [int(bars.nth(i).get_attribute("data-count")) for i in range(bars.count())]
    assert sum(counts) == 4 and sum(1 for c in counts if c) >= 2  # the four unlabelled runs the champion scored
    over_time = chart(page, "agreement-over-time")
    assert over_time.locator(".series-0 circle.point").get_attribute("data-y") == "0.75"  # 3 of 4 pairs agree
    assert over_time.locator(".series-1 circle.point").get_attribute("data-y") == "1"  # the model said LCA first

    assert page.locator("#versions tbody tr").count() == 3
    assert "0.800 [0.7–0.85] (n=12)" in page.locator("#versions tr[data-number='3'] td.test").inner_text()
    assert page.locator("#cases tbody tr").count() == 1
    assert page.get_attribute("#cases tbody tr", "data-item") == str(vessel_case[0].pk)
    assert chart(page, "items-per-hour").locator("rect.bar").count() == 2
    assert chart(page, "gold-agreement").get_attribute("data-empty") == "true"  # no gold items yet

    with page.expect_download() as download_info:
        page.click("#annotators h2 a.csv")
    download = download_info.value
    assert download.suggested_filename == f"{vessel_project.slug}-annotators.csv"
    rows = list(csv.DictReader(io.StringIO(open(download.path(), encoding="utf-8").read())))
    assert {(r["annotator"], r["labels"]) for r in rows} == {("annotator-user", "4"), ("second-annotator", "4")}

    form = page.locator(f"form.review-form[data-annotator='{annotator.username}']")
    form.locator("input[name=limit]").fill("2")
    form.locator("input[name=note]").fill("please look again at the LCA runs")
    form.locator("button").click()
    page.wait_for_selector(f"form.review-form[data-annotator='{annotator.username}'][data-review]")
    assert "Sent 2 item(s) back to annotator-user" in form.locator(".review-result").inner_text()
    review = ReviewRequest.objects.get(annotator=annotator)
    assert review.items.count() == 2 and review.note == "please look again at the LCA runs"
    first_review = form.get_attribute("data-review")
    form.locator("input[name=limit]").fill("500")
    form.locator("button").click()  # the two newest are under review already: the other two go
    page.wait_for_function(
        "([n, first]) => document.querySelector(`form.review-form[data-annotator='${n}']`).dataset.review !== first",
        arg=[annotator.username, first_review],
    )
    assert "Sent 2 item(s)" in form.locator(".review-result").inner_text()
    form.locator("button").click()  # nothing left to send back: the server's reason is shown
    page.wait_for_selector(f"form.review-form[data-annotator='{annotator.username}'] .review-result.bad")
    assert "has no labels in this project to review" in form.locator(".review-result").inner_text()
    assert ReviewRequest.objects.filter(annotator=annotator).count() == 2
    screenshot("quality-dashboard")


# Stands in for the project websocket (the live server speaks WSGI only): the test hands events to the page.
FAKE_SOCKET = """
window.fakeSockets = [];
window.WebSocket = class {
  constructor(url) { this.url = url; this.listeners = {}; window.fakeSockets.push(this);
    setTimeout(() => this.emit("open", {}), 0); }
  addEventListener(type, listener) { (this.listeners[type] ||= []).push(listener); }
  emit(type, event) { for (const listener of this.listeners[type] || []) listener(event); }
  send() {}
  close() {}
};
"""


def send_event(page, event: dict) -> None:
    page.evaluate("(e) => window.fakeSockets.forEach((s) => s.emit('message', {data: JSON.stringify(e)}))", event)


def test_live_events_reload_model_health_and_the_queue(
    page, live_server, lead, annotator, second_annotator, vessel_project, vessel_case
):
    page.add_init_script(FAKE_SOCKET)
    log_in(page, live_server, lead.username)
    open_dashboard(page, live_server, vessel_project)
    page.wait_for_selector("#quality[data-live='open']")
    assert page.evaluate("window.fakeSockets[0].url").endswith(f"/ws/projects/{vessel_project.slug}/")
    model_version(vessel_project, 4, ModelStatus.REJECTED, labels=9, test=0.7, metric="macro_f1")
    send_event(page, {"event": "model", "model_version": 4, "status": "rejected", "rule": "v4: not better"})
    page.wait_for_selector("#versions tr[data-number='4']", timeout=5000)  # well before the 30 s reload
    assert chart(page, "learning-curve").locator("circle.point").count() == 4

    label(vessel_case[5], annotator, {"vessel": "LCA"})
    label(vessel_case[5], second_annotator, {"vessel": "neither"})
    send_event(page, {"event": "queue", "open": 3})
    page.wait_for_selector(f"#cases tr[data-item='{vessel_case[5].pk}']", timeout=5000)
    assert page.get_attribute("#adjudication", "data-count") == "2"


def test_a_new_project_shows_empty_states_instead_of_plots(page, live_server, lead, vessel_project):
    log_in(page, live_server, lead.username)
    open_dashboard(page, live_server, vessel_project)
    for name, words in (
        ("learning-curve", "No model yet"),
        ("queue-uncertainty", "No model yet"),
        ("agreement-over-time", "No overlapping labels yet"),
        ("confusion", "No overlapping labels yet"),
    ):
        assert chart(page, name).get_attribute("data-empty") == "true", name
        assert words in chart(page, name).locator(".chart-empty").inner_text(), name
    assert page.locator("figure.chart svg").count() == 0
    assert page.is_visible("#cases-empty") and page.is_visible("#versions-empty")


def test_lead_settles_a_disagreement_from_the_queue_starting_from_an_annotators_label(
    page, live_server, lead, annotator, second_annotator, vessel_project, vessel_case, screenshot
):
    item = vessel_case[0]
    log_in(page, live_server, lead.username)
    open_dashboard(page, live_server, vessel_project)
    page.click(f"#cases tr[data-item='{item.pk}'] a.adjudicate-link")
    page.wait_for_selector(ADJUDICATE_READY)
    assert page.get_attribute("#adj-reason", "data-reason") == "disagreement"
    assert page.inner_text("#case-detail") == "2 annotators disagree"
    panels = page.locator(".opinion")
    assert panels.count() == 3  # two annotators, then the model
    assert page.inner_text(".opinion[data-author='annotator-user'] .opinion-class") == "LCA"
    assert page.inner_text(".opinion[data-author='second-annotator'] .opinion-class") == "RCA"
    model = page.locator(".opinion[data-kind='model']")
    assert model.locator(".opinion-class").inner_text() == "LCA"
    assert model.locator(".probabilities li[data-class='LCA']").inner_text().endswith("70%")

    page.click("#settle")  # nothing chosen yet: the tool refuses before anything is sent
    assert "Choose the vessel" in page.inner_text("#settle-error")
    page.click(".opinion[data-author='second-annotator'] .start-from")
    assert page.locator(".vessel-option[aria-pressed=true]").get_attribute("data-vessel") == "RCA"
    assert page.get_attribute("#adjudicate", "data-started-from") == "second-annotator"
    page.fill("#settle-note", "RCA fills in both views")
    screenshot("adjudicate-vessel")
    page.click("#settle")
    page.wait_for_url("**/quality/?settled=*")
    page.wait_for_selector(DASHBOARD_READY)

    decision = Adjudication.objects.get(item=item)
    assert decision.label.payload == {"vessel": "RCA"} and decision.note == "RCA fills in both views"
    assert decision.reason == "disagreement" and decision.label.source == LabelSource.ADJUDICATION
    assert decision.decided_by == lead
    for person, vessel in ((annotator, "LCA"), (second_annotator, "RCA")):  # the annotators' labels stay as they were
        kept = Label.objects.get(item=item, author=person, superseded_at__isnull=True)
        assert kept.payload == {"vessel": vessel}
    assert page.locator(f"#cases tr[data-item='{item.pk}']").count() == 0
    assert page.get_attribute("#adjudication", "data-count") == "0"
    assert "settled" in page.inner_text("#status")


def test_a_refused_decision_shows_the_field_and_why(page, live_server, lead, vessel_project, vessel_case):
    item = vessel_case[0]
    log_in(page, live_server, lead.username)
    page.goto(f"{live_server.url}/projects/{vessel_project.slug}/adjudicate/{item.pk}/?reason=whim")
    page.wait_for_selector(ADJUDICATE_READY)
    page.keyboard.press("1")  # the tool's own keys work here: LCA
    assert page.locator(".vessel-option[aria-pressed=true]").get_attribute("data-vessel") == "LCA"
    page.click("#settle")
    page.wait_for_selector("#settle-error[data-field='reason']")
    assert "reason: must be one of" in page.inner_text("#settle-error")
    assert not Adjudication.objects.exists()


def test_annotators_and_strangers_get_no_quality_pages(
    page, live_server, annotator, stranger, vessel_project, vessel_case
):
    log_in(page, live_server, annotator.username)
    for path in ("quality/", f"adjudicate/{vessel_case[0].pk}/"):
        response = page.goto(f"{live_server.url}/projects/{vessel_project.slug}/{path}")
        assert response.status == 403
        assert "Leads only" in page.inner_text("#forbidden")
        assert page.locator("svg").count() == 0 and page.locator("#quality, #adjudicate").count() == 0
    page.context.clear_cookies()
    log_in(page, live_server, stranger.username)
    response = page.goto(f"{live_server.url}/projects/{vessel_project.slug}/quality/")
    assert response.status == 404


# ---------------------------------------------------------------------------------------------------- OCT calcium
OCT_SIZE = 64


def rectangle(top: int, left: int, height: int, width: int) -> np.ndarray:
    mask = np.zeros((OCT_SIZE, OCT_SIZE), bool)
    mask[top : top + height, left : left + width] = True
    return mask


def test_lead_settles_an_oct_frame_from_the_models_mask(
    page, live_server, lead, annotator, oct_project, tmp_path, screenshot
):
    project_update(project=oct_project, settings={"overlap_rate": 0.0})
    other = UserFactory(username="oct-second")
    MembershipFactory(project=oct_project, user=other, role=Role.ANNOTATOR)
    generate_oct_cohort(tmp_path / "cohort", n_pullbacks=1, frames=4, size=OCT_SIZE, seed=3)
    import_run(project=oct_project, sources=sources_from_path(tmp_path / "cohort", limits=ArchiveLimits(members=10)))
    frames = list(Item.objects.filter(project=oct_project).order_by("frame_index"))
    item = frames[1]
    champion = model_version(oct_project, 1, ModelStatus.CHAMPION, labels=3, test=0.6, metric="dice_mean")
    predicted = rectangle(30, 30, 10, 12)
    Prediction.objects.create(
        item=item,
        model_version=champion,
        output={"mask": mask_encode(predicted), "calcium_fraction": 0.03},
        uncertainty=0.4,
        confidence=0.8,
    )
    label(item, annotator, {"mask": mask_encode(rectangle(5, 5, 8, 8))})
    label(item, other, {"mask": mask_encode(rectangle(40, 40, 8, 8))})  # no overlap: Dice 0, a disagreement

    log_in(page, live_server, lead.username)
    open_dashboard(page, live_server, oct_project)
    dice = chart(page, "dice-histogram")
    assert dice.locator("rect.bar[data-count='1']").get_attribute("data-from") == "0"  # one frame, Dice 0
    assert page.locator("#pair-table tbody tr").count() == 1
    assert chart(page, "learning-curve").locator("circle.point").count() == 1
    page.click(f"#cases tr[data-item='{item.pk}'] a.adjudicate-link")
    page.wait_for_selector(ADJUDICATE_READY)
    page.wait_for_selector("#oct-canvas")
    overlays = page.locator(".opinion canvas.opinion-canvas")
    assert overlays.count() == 3  # each annotator's mask and the model's, over the frame
    page.wait_for_function("document.querySelectorAll(\".opinion-canvas[data-drawn='true']\").length === 3")
    assert [overlays.nth(i).get_attribute("data-mask-pixels") for i in range(3)] == ["64", "64", "120"]
    # The overlay is drawn in the annotator's colour over the frame where the mask is set, not elsewhere.
    pixel = "([x, y]) => Array.from(document.querySelector('CANVAS').getContext('2d').getImageData(x, y, 1, 1).data)"
    model_pixel = pixel.replace("CANVAS", ".model .opinion-canvas")
    pixel = pixel.replace("CANVAS", ".opinion-canvas")
    inside, bare = page.evaluate(pixel, [8, 8]), page.evaluate(model_pixel, [8, 8])
    assert inside[0] >= bare[0] and inside[0] - inside[2] > bare[0] - bare[2] + 30
    assert page.evaluate(pixel, [50, 20]) == page.evaluate(model_pixel, [50, 20])

    page.click(".opinion[data-kind='model'] .start-from")
    assert page.evaluate("window.lumenOct.mask()") == mask_encode(predicted)
    page.fill("#settle-note", "the model's arc matches the shadowing")
    screenshot("adjudicate-oct")
    page.click("#settle")
    page.wait_for_url("**/quality/?settled=*")
    decision = Adjudication.objects.get(item=item)
    assert decision.label.payload["excluded"] is False
    assert (mask_decode(decision.label.payload["mask"]) == predicted).all()
    assert decision.prediction.model_version == champion and decision.note == "the model's arc matches the shadowing"
    assert Label.objects.filter(item=item, source=LabelSource.ANNOTATOR).count() == 2


# ---------------------------------------------------------------------------------------------------- SPECT
def scores(**by_segment: int) -> list[int]:
    out = [0] * 17
    for key, value in by_segment.items():
        out[int(key[1:]) - 1] = value
    return out


def test_spect_adjudication_shows_each_readers_bullseyes_and_rollup(
    page, live_server, lead, annotator, spect_project, tmp_path, screenshot
):
    project_update(project=spect_project, settings={"overlap_rate": 0.0})
    other = UserFactory(username="spect-second")
    MembershipFactory(project=spect_project, user=other, role=Role.ANNOTATOR)
    generate_spect_cohort(tmp_path / "cohort", n_patients=2, size=64, seed=4, fmt="png")
    import_run(project=spect_project, sources=sources_from_path(tmp_path / "cohort", limits=ArchiveLimits(members=100)))
    item, agreed = Item.objects.filter(project=spect_project).order_by("pk")
    rest = [0] * 17
    label(item, annotator, {"stress": scores(s3=3, s9=2), "rest": rest})  # RCA SSS 5: abnormal
    label(item, other, {"stress": scores(s3=1), "rest": rest})  # RCA SSS 1: normal
    label(agreed, annotator, {"stress": scores(s3=2), "rest": rest})
    label(agreed, other, {"stress": scores(s3=2), "rest": rest})
    champion = model_version(spect_project, 1, ModelStatus.CHAMPION, labels=10, test=0.7, metric="patient_auc")
    Prediction.objects.create(
        item=item,
        model_version=champion,
        output={
            "probabilities": {"LAD": 0.1, "RCA": 0.8, "LCX": 0.2},
            "abnormal": {"LAD": False, "RCA": True, "LCX": False},
        },
        uncertainty=0.5,
        confidence=0.8,
    )

    log_in(page, live_server, lead.username)
    open_dashboard(page, live_server, spect_project)
    assert chart(page, "segment-kappa").locator(".bar-group").count() == 17
    assert page.locator("#territory-table tbody tr").count() == 3
    page.click(f"#cases tr[data-item='{item.pk}'] a.adjudicate-link")
    page.wait_for_selector(ADJUDICATE_READY)
    first = page.locator(".opinion[data-author='annotator-user']")
    assert first.locator("svg.mini-eye").count() == 2
    assert first.locator("svg[data-phase='stress'] path[data-segment='3']").get_attribute("data-score") == "3"
    assert first.locator("tr[data-territory='RCA']").get_attribute("data-abnormal") == "true"
    second = page.locator(".opinion[data-author='spect-second']")
    assert second.locator("tr[data-territory='RCA']").get_attribute("data-abnormal") == "false"
    assert page.locator(".opinion[data-kind='model'] .start-from").count() == 0  # the model predicts flags, not scores
    page.click(".opinion[data-author='annotator-user'] .start-from")
    screenshot("adjudicate-spect")
    page.click("#settle")
    page.wait_for_url("**/quality/?settled=*")
    assert Adjudication.objects.get(item=item).label.payload["stress"] == scores(s3=3, s9=2)
