"""In a real browser: a lead logs in, sees the projects, uploads files and reads each file's outcome."""

from __future__ import annotations

import pytest

from annotation.models import Instance, Item
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


def test_lead_uploads_runs_and_sees_a_truncated_file_rejected(
    page, live_server, lead, vessel_project, tmp_path, screenshot
):
    log_in(page, live_server, lead.username)
    assert page.locator(f"#projects tr[data-slug='{vessel_project.slug}']").count() == 1
    page.click(f"text={vessel_project.name}")
    good = tmp_path / "run-good.dcm"
    good.write_bytes(samples.xa_bytes(seed=21))
    bad = tmp_path / "run-cut.dcm"
    bad.write_bytes(samples.xa_bytes(seed=22)[:-300])
    page.set_input_files("#import-files", [str(good), str(bad)])
    page.click("#import-form button[type=submit]")
    page.wait_for_selector("#import-results:not([hidden])")
    summary = page.locator("#import-summary").inner_text()
    assert "1 stored" in summary and "1 rejected" in summary
    rows = page.locator("#import-results tbody tr")
    texts = [rows.nth(i).inner_text() for i in range(rows.count())]
    assert any("run-cut.dcm" in t and "truncated" in t for t in texts), texts
    screenshot("import-results")
    assert Instance.objects.count() == 1 and Item.objects.filter(project=vessel_project).count() == 1
    page.reload()
    assert page.locator("#items tbody tr").count() == 1


def test_annotator_sees_projects_but_no_import(page, live_server, annotator, vessel_project):
    log_in(page, live_server, annotator.username)
    page.click(f"text={vessel_project.name}")
    assert page.locator("#import").count() == 0
