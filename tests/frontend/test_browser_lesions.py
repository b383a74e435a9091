"""In a real browser, under the site's content security policy: a lead uploads a lesion-report CSV on the project
page (a bad file lists every bad row, a good one lists the exam with its lesions linked to runs), downloads the
run ↔ lesion pairs, and sees a run's linked lesions (or why none) in the item browser."""

from __future__ import annotations

import csv
import io

import pytest

from annotation.models import ExamReport
from annotation.services import label_submit, project_update
from tests import dicom_samples as samples
from tests.annotation.test_ingest import run
from tests.frontend.test_browser_csp import _violations, policed_page
from tests.frontend.test_browser_import import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ORIGINAL = "1.2.826.0.1.3680043.8.498.777001"  # the exam's UID as the hospital's report names it
HEADER = b"study_instance_uid,segment,stenosis_percent,dominance,note\n"


@pytest.fixture
def exam(vessel_project, annotator):
    """One exam of three runs, labelled RCA, LCA and neither."""
    project_update(project=vessel_project, settings={"overlap_rate": 0.0})
    files = []
    for i in range(3):
        ds = samples.dataset(seed=90 + i, frames=3, size=32)
        ds.StudyInstanceUID = ORIGINAL
        files.append((f"run{i}.dcm", samples.to_bytes(ds)))
    assert run(vessel_project, *files).summary()["stored"] == 3
    items = list(vessel_project.items.order_by("pk"))
    for item, vessel in zip(items, ["RCA", "LCA", "neither"], strict=True):
        label_submit(item=item, author=annotator, payload={"vessel": vessel}, base_version=None)
    return items


@pytest.fixture
def strict_page(browser):
    with policed_page(browser, viewport={"width": 1280, "height": 900}, accept_downloads=True) as page:
        yield page


def upload(page, name: str, data: bytes) -> None:
    page.set_input_files("#lesion-file", files=[{"name": name, "mimeType": "text/csv", "buffer": data}])
    page.click("#lesion-submit")


def test_lead_uploads_reports_sees_errors_linkage_and_downloads_pairs(
    strict_page, live_server, vessel_project, lead, exam
):
    page = strict_page
    log_in(page, live_server, lead.username)
    page.wait_for_selector("#projects")
    page.goto(f"{live_server.url}/projects/{vessel_project.slug}/")
    page.wait_for_selector("#lesion-reports[data-ready]", state="attached")
    assert page.text_content("#lesion-summary") == "No report imported yet."
    assert page.locator("#settings-form input[name=lesion_link_confidence]").input_value() == "0.9"

    upload(page, "bad.csv", HEADER + f"{ORIGINAL},17,70,right,\n1.2.3.4,2,50,,\n".encode())
    page.wait_for_selector("#lesion-errors li")
    assert page.text_content("#lesion-errors-title") == "report file refused, nothing imported: 2 problems"
    assert page.locator("#lesion-errors li").all_inner_texts() == [
        "Row 2 · segment: must be a whole number from 1 to 16 (got '17')",
        "Row 3 · study_instance_uid: no exam of this project has that study_instance_uid",
    ]
    assert not ExamReport.objects.exists()

    upload(page, "good.csv", HEADER + f"{ORIGINAL},2,70,right,\n{ORIGINAL},6,50,,\n".encode())
    page.wait_for_selector("#lesion-exams tbody tr")
    assert page.text_content("#lesion-status") == "Imported good.csv: 1 exam, 2 lesions."
    assert page.locator("#lesion-errors").is_hidden()
    row = page.locator("#lesion-exams tbody tr")
    lesions = row.locator("ul.lesion-list li").all_inner_texts()
    assert lesions == [f"2 mid RCA 70 % → {exam[0].title}", f"6 proximal LAD 50 % → {exam[1].title}"]
    assert row.locator("td.flags").inner_text() == "linked"
    assert "right" in row.inner_text()

    with page.expect_download() as download:
        page.click("#lesion-pairs")
    with open(download.value.path(), encoding="utf-8") as handle:
        pairs = list(csv.DictReader(io.StringIO(handle.read())))
    assert [(p["item_id"], p["artery"], p["segment"], p["stenosis_percent"]) for p in pairs] == [
        (str(exam[0].pk), "RCA", "2", "70"),
        (str(exam[1].pk), "LCA", "6", "50"),
    ]

    page.goto(f"{live_server.url}/projects/{vessel_project.slug}/items/")
    page.wait_for_selector("#item-browser[data-state='ready']")
    page.click(f"button.show-lesions[data-item='{exam[0].pk}']")
    detail = page.wait_for_selector(f"tr.lesion-detail[data-detail-of='{exam[0].pk}'] li")
    assert detail.inner_text() == "Segment 2 (mid RCA): 70 %"
    assert "Vessel type RCA (label). Linked lesions:" in page.inner_text(f"tr[data-detail-of='{exam[0].pk}']")
    page.click(f"button.show-lesions[data-item='{exam[2].pk}']")
    page.wait_for_selector(f"tr.lesion-detail[data-detail-of='{exam[2].pk}'] td.lesion-linkage")
    assert page.inner_text(f"tr[data-detail-of='{exam[2].pk}']").startswith(
        "No linked lesion: typed neither (label): it shows no coronary artery"
    )
    page.click(f"button.show-lesions[data-item='{exam[2].pk}']")  # closes again
    assert page.locator(f"tr[data-detail-of='{exam[2].pk}']").count() == 0
    assert _violations(page) == []
