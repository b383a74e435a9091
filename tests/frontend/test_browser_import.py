"""In a real browser: a lead logs in, sees the projects, uploads files and reads each file's outcome."""

from __future__ import annotations

import pytest

from annotation.models import Instance, Item
from annotation.services.imports import ImportWorker
from tests import dicom_samples as samples

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw-for-tests")
    page.click("button[type=submit]")


def test_wrong_password_is_refused(page, live_server, lead):
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", lead.username)
    page.fill("input[name=password]", "wrong")
    page.click("button[type=submit]")
    assert "didn't match" in page.locator("[role=alert]").inner_text()


@pytest.fixture
def import_worker():
    """The import worker the orchestrator runs, as a thread of the test process (the live server's database)."""
    worker = ImportWorker(idle_seconds=0.2)
    worker.start()
    yield worker
    worker.stop(timeout=30)


def test_lead_uploads_runs_and_sees_a_truncated_file_rejected(
    page, live_server, lead, vessel_project, tmp_path, screenshot, import_worker
):
    log_in(page, live_server, lead.username)
    assert page.locator(f"#projects tr[data-slug='{vessel_project.slug}']").count() == 1
    page.click(f"text={vessel_project.name}")
    good = tmp_path / "run-good.dcm"
    good.write_bytes(samples.xa_bytes(seed=21))
    bad = tmp_path / "run-cut.dcm"
    bad.write_bytes(samples.xa_bytes(seed=22)[:-300])
    page.wait_for_selector("#import[data-ready]", state="attached")
    page.set_input_files("#import-files", [str(good), str(bad)])
    assert "2 files chosen" in page.locator("#import-picked").inner_text()
    page.click("#import-submit")
    page.wait_for_function("document.getElementById('import-summary').textContent.includes('item(s) created')")
    summary = page.locator("#import-summary").inner_text()
    assert "1 stored" in summary and "1 rejected" in summary
    assert page.locator("#import-upload-bar").evaluate("bar => bar.value") == 1
    assert page.locator("#import-job-bar").evaluate("bar => bar.value") == 1
    assert "2 of 2 files" in page.locator("#import-job-text").inner_text()
    rows = page.locator("#import-results tbody tr")
    texts = [rows.nth(i).inner_text() for i in range(rows.count())]
    assert any("run-cut.dcm" in t and "truncated" in t for t in texts), texts
    screenshot("import-results")
    assert Instance.objects.count() == 1 and Item.objects.filter(project=vessel_project).count() == 1
    page.reload()
    assert page.locator("#items tbody tr").count() == 1


def test_a_dropped_folder_is_imported_with_each_files_path(page, live_server, lead, vessel_project, import_worker):
    log_in(page, live_server, lead.username)
    page.click(f"text={vessel_project.name}")
    # A drop of a folder as Chromium delivers it: entries whose files keep their place inside the folder.
    files = {"exam-7/left/run1.dcm": samples.xa_bytes(seed=31), "exam-7/right/run2.dcm": samples.xa_bytes(seed=32)}
    payload = {path: list(data) for path, data in files.items()}
    page.wait_for_selector("#import[data-ready]", state="attached")
    page.evaluate(
        """(payload) => {
          const file = (path) => new File([new Uint8Array(payload[path])], path.split("/").pop());
          const entry = (name, children) => ({
            isFile: false, name,
            createReader() { let done = false; return { readEntries(ok) { ok(done ? [] : children); done = true; } }; },
          });
          const leaf = (path) => ({ isFile: true, name: path.split("/").pop(), file(ok) { ok(file(path)); } });
          const folder = entry("exam-7", [
            entry("left", [leaf("exam-7/left/run1.dcm")]), entry("right", [leaf("exam-7/right/run2.dcm")]),
          ]);
          const drop = new Event("drop", { bubbles: true, cancelable: true });
          drop.dataTransfer = { items: [{ webkitGetAsEntry: () => folder }], files: [] };
          document.getElementById("import-drop").dispatchEvent(drop);
        }""",
        payload,
    )
    page.wait_for_function("document.getElementById('import-picked').textContent.startsWith('2 files chosen')")
    page.click("#import-submit")
    page.wait_for_function("document.getElementById('import-summary').textContent.includes('2 stored')")
    names = page.locator("#import-results tbody tr td:first-child").all_inner_texts()
    assert names == ["exam-7/left/run1.dcm", "exam-7/right/run2.dcm"]
    assert Instance.objects.count() == 2


def test_annotator_sees_projects_but_no_import(page, live_server, annotator, vessel_project):
    log_in(page, live_server, annotator.username)
    page.click(f"text={vessel_project.name}")
    assert page.locator("#import").count() == 0
