"""In a real browser: a lead logs in, sees the projects, uploads files and reads each file's outcome."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from annotation.ingest.staging import STAGING_FOLDER
from annotation.models import Instance, Item, Job, JobKind, Membership, Role
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


# --- Drag and drop, the upload's progress, cancelling and refusals --------------------------------------------

# Runs in the page: one DataTransfer holding the files (real DICOM bytes, base64), dispatched on the drop zone as
# a drag from the desktop reaches it (dragenter, dragover, drop). Answers whether the zone accepted the drag.
DROP_JS = """
(payload) => {
  const transfer = new DataTransfer();
  for (const [name, encoded] of Object.entries(payload)) {
    const bytes = Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0));
    transfer.items.add(new File([bytes], name, { type: "application/dicom" }));
  }
  const zone = document.getElementById("import-drop");
  const fire = (type) =>
    zone.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: transfer }));
  const entered = !fire("dragenter");
  const accepted = !fire("dragover");
  const highlighted = zone.classList.contains("over");
  fire("drop");
  return { entered, accepted, highlighted, after: zone.classList.contains("over") };
}
"""

# Records every value the upload bar takes (the progress element reflects `value` into its attribute).
WATCH_UPLOAD_BAR_JS = """() => {
  window.__uploadBar = [];
  const bar = document.getElementById("import-upload-bar");
  new MutationObserver(() => window.__uploadBar.push(bar.value)).observe(bar, { attributeFilter: ["value"] });
}"""


def open_import(page, live_server, project) -> None:
    page.goto(f"{live_server.url}/projects/{project.slug}/")
    page.wait_for_selector("#import[data-ready]", state="attached")


def drop_files(page, files: dict[str, bytes]) -> None:
    payload = {name: base64.b64encode(data).decode() for name, data in files.items()}
    drag = page.evaluate(DROP_JS, payload)
    assert drag == {"entered": True, "accepted": True, "highlighted": True, "after": False}, drag
    page.wait_for_function("document.getElementById('import-picked').textContent.includes('chosen')")


def staged_files(media_root: Path) -> list[Path]:
    return [path for path in (media_root / STAGING_FOLDER).rglob("*") if path.is_file()]


def test_files_dropped_on_the_zone_upload_with_a_progress_bar_and_become_items(
    page, live_server, lead, vessel_project, import_worker, screenshot
):
    files = {"run-a.dcm": samples.xa_bytes(seed=41), "run-b.dcm": samples.xa_bytes(seed=42)}
    total = sum(len(data) for data in files.values())
    log_in(page, live_server, lead.username)
    open_import(page, live_server, vessel_project)
    assert page.locator("#import-submit").is_disabled()
    drop_files(page, files)
    assert page.inner_text("#import-picked") == f"2 files chosen ({total / 1024:.1f} KB)."
    assert page.locator("#import-submit").is_enabled()

    page.evaluate(WATCH_UPLOAD_BAR_JS)
    page.click("#import-submit")
    page.wait_for_function("document.getElementById('import-summary').textContent.includes('item(s) created')")
    # The bar followed the bytes the browser reported sent, up to all of them, before the job was followed.
    values = page.evaluate("window.__uploadBar")
    assert values[-1] == 1 and values == sorted(values), values
    upload_text = page.inner_text("#import-upload-text")
    assert upload_text.startswith(f"2 files ({total / 1024:.1f} KB) · ") and "(100 %)" in upload_text, upload_text
    assert page.locator("#import-job-bar").evaluate("bar => bar.value") == 1
    assert "2 of 2 files" in page.inner_text("#import-job-text")
    assert "2 stored, 0 duplicate, 0 rejected, 2 item(s) created" in page.inner_text("#import-summary")
    assert page.locator("#import-results tbody tr td:first-child").all_inner_texts() == ["run-a.dcm", "run-b.dcm"]
    assert page.locator("#import-error").is_hidden()
    assert page.locator("#import-cancel").is_hidden()
    screenshot("import-dropped")

    job = Job.objects.get(project=vessel_project, kind=JobKind.IMPORT)
    assert job.created_by == lead and Item.objects.filter(project=vessel_project).count() == 2
    page.reload()
    assert page.locator("#items tbody tr").count() == 2


def test_the_drop_zone_is_a_button_that_opens_the_file_picker_and_a_folder_can_be_picked(
    page, live_server, lead, vessel_project, import_worker, tmp_path
):
    folder = tmp_path / "exam-9"
    (folder / "left").mkdir(parents=True)
    (folder / "left" / "run1.dcm").write_bytes(samples.xa_bytes(seed=48))
    (folder / "run2.dcm").write_bytes(samples.xa_bytes(seed=49))
    log_in(page, live_server, lead.username)
    open_import(page, live_server, vessel_project)
    zone = page.locator("#import-drop")
    assert zone.get_attribute("role") == "button"
    zone.focus()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    assert chooser.value.is_multiple() and chooser.value.element.get_attribute("id") == "import-files"
    chooser.value.set_files([])
    with page.expect_file_chooser() as chooser:
        page.click("#import-choose-folder")
    chooser.value.set_files(folder)
    page.wait_for_function("document.getElementById('import-picked').textContent.startsWith('2 files chosen')")
    page.click("#import-submit")
    page.wait_for_function("document.getElementById('import-summary').textContent.includes('item(s) created')")
    names = page.locator("#import-results tbody tr td:first-child").all_inner_texts()
    assert sorted(names) == ["exam-9/left/run1.dcm", "exam-9/run2.dcm"]


def test_cancel_aborts_the_upload_and_keeps_the_files_for_another_try(
    page, live_server, lead, vessel_project, import_worker, isolated_media
):
    big = samples.xa_bytes(seed=43, frames=12, size=512)  # 3 MB: several seconds at the throttled rate below
    log_in(page, live_server, lead.username)
    open_import(page, live_server, vessel_project)
    drop_files(page, {"long-run.dcm": big})

    # The browser's own network throttling (DevTools protocol), so the upload is slow enough to cancel.
    devtools = page.context.new_cdp_session(page)
    devtools.send("Network.enable")
    devtools.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 256 * 1024},
    )
    page.click("#import-submit")
    page.wait_for_function("document.getElementById('import-upload-bar').value > 0.05")
    assert page.locator("#import-submit").is_disabled() and page.locator("#import-choose-files").is_disabled()
    page.click("#import-cancel")
    page.wait_for_function("document.getElementById('import-summary').textContent === 'Upload cancelled.'")
    assert page.locator("#import-upload-bar").evaluate("bar => bar.value") < 0.9
    assert page.inner_text("#import-upload-text").endswith("— stopped")
    assert page.locator("#import-cancel").is_hidden() and page.locator("#import-error").is_hidden()
    assert page.inner_text("#import-picked").startswith("1 file (3.0 MB) still chosen")
    # The server saw a body cut short: no job, and what it had staged is gone.
    for _ in range(100):
        if not staged_files(isolated_media):
            break
        page.wait_for_timeout(100)
    assert staged_files(isolated_media) == []
    assert not Job.objects.filter(kind=JobKind.IMPORT).exists()

    devtools.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    assert page.locator("#import-submit").is_enabled()
    page.click("#import-submit")  # the same file, never chosen again
    page.wait_for_function("document.getElementById('import-summary').textContent.includes('item(s) created')")
    assert "1 stored" in page.inner_text("#import-summary")
    assert Instance.objects.get().number_of_frames == 12


def test_refused_and_failed_uploads_say_why_and_keep_the_files(
    page, live_server, lead, vessel_project, import_worker, settings
):
    files = {"run-c.dcm": samples.xa_bytes(seed=44), "run-d.dcm": samples.xa_bytes(seed=45)}
    log_in(page, live_server, lead.username)
    open_import(page, live_server, vessel_project)
    drop_files(page, files)
    error = page.locator("#import-error")

    def refused() -> str:
        page.click("#import-submit")
        page.wait_for_function("!document.getElementById('import-error').hidden")
        assert page.inner_text("#import-picked").startswith("2 files (")
        assert "still chosen" in page.inner_text("#import-picked")
        assert page.locator("#import-submit").is_enabled()
        return error.inner_text()

    # The server's limits, lowered after the page was drawn (the page checks the limits it was given).
    settings.LUMEN_MAX_UPLOAD_BYTES = 4096
    assert refused() == (
        "The server refused the upload as too large (413): upload too large: "
        "the limit is 4096 bytes per upload (LUMEN_MAX_UPLOAD_BYTES)."
    )
    settings.LUMEN_MAX_UPLOAD_BYTES = 20 * 1024**3
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 1
    assert refused() == (
        "The server refused the upload (400): too many files: one upload takes at most 1 (LUMEN_MAX_UPLOAD_FILES)."
    )
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2000
    page.route("**/imports/", lambda route: route.abort("connectionreset"))
    assert refused() == ("The connection broke before the server answered (network failure, or the server closed it).")
    page.unroute("**/imports/")
    Membership.objects.filter(project=vessel_project, user=lead).update(role=Role.ANNOTATOR)
    assert refused() == (
        "The server refused the upload (403): Only the project's leads can do this. "
        "Reload the page: your session may have ended or your role changed."
    )
    assert not Job.objects.exists()

    Membership.objects.filter(project=vessel_project, user=lead).update(role=Role.LEAD)
    page.click("#import-submit")
    page.wait_for_function("document.getElementById('import-summary').textContent.includes('item(s) created')")
    assert "2 stored" in page.inner_text("#import-summary") and error.is_hidden()


def test_a_choice_over_the_limits_is_refused_before_it_is_sent(page, live_server, lead, vessel_project, settings):
    settings.LUMEN_MAX_UPLOAD_BYTES = 6000
    log_in(page, live_server, lead.username)
    open_import(page, live_server, vessel_project)
    drop_files(page, {"run-e.dcm": samples.xa_bytes(seed=46), "run-f.dcm": samples.xa_bytes(seed=47)})
    assert page.inner_text("#import-error").endswith(
        "chosen: one upload takes at most 5.9 KB. Upload fewer files at a time."
    )
    assert page.locator("#import-submit").is_disabled()
    drop_files(page, {"run-e.dcm": samples.xa_bytes(seed=46)})
    assert page.locator("#import-error").is_hidden() and page.locator("#import-submit").is_enabled()
