"""In a real browser: a lead starts a dataset export from the project page, sees it finish and downloads it."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest

from annotation.models import Item, Job, JobKind
from annotation.services import label_submit
from annotation.services.imports import ImportWorker
from tests import dicom_samples as samples
from tests.annotation.test_ingest import run
from tests.frontend.test_browser_import import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker():
    """The orchestrator's import worker (it runs exports too), as a thread of the test process."""
    thread = ImportWorker(idle_seconds=0.2)
    thread.start()
    yield thread
    thread.stop(timeout=30)


def test_lead_exports_the_dataset_and_downloads_it(
    page, live_server, lead, annotator, vessel_project, worker, screenshot
):
    assert run(vessel_project, ("run.dcm", samples.xa_bytes(seed=41))).summary()["stored"] == 1
    item = Item.objects.get(project=vessel_project)
    label_submit(item=item, author=annotator, payload={"vessel": "LCA"}, base_version=None, time_spent_ms=1500)

    log_in(page, live_server, lead.username)
    page.goto(f"{live_server.url}/projects/{vessel_project.slug}/")
    page.wait_for_selector("#exports[data-ready]", state="attached")
    assert page.locator("#export-empty").is_visible()
    page.click("#export-start")
    link = page.wait_for_selector("#export-list a.download", timeout=30000)

    job = Job.objects.get(project=vessel_project, kind=JobKind.EXPORT)
    assert job.status == "succeeded"
    row = page.locator(f"#export-list tr[data-export='{job.pk}']")
    assert row.get_attribute("data-status") == "succeeded"
    assert row.locator("progress").evaluate("bar => bar.value") == 100
    assert "1 current label, 1 version" in row.inner_text() and lead.username in row.inner_text()
    assert not page.locator("#export-empty").is_visible()
    screenshot("exports")
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == job.result["filename"]
    with zipfile.ZipFile(download.value.path()) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("labels.csv").decode())))
    assert [(r["item_id"], r["author"], r["vessel"], r["time_spent_ms"]) for r in rows] == [
        (str(item.pk), annotator.username, "LCA", "1500")
    ]
