"""In a real browser, against a real Orthanc: a lead connects the project's PACS, searches it, picks a study and
imports it; the import's progress and each file's outcome appear on the project page."""

from __future__ import annotations

import pytest

from annotation.credentials import credential_decrypt
from annotation.models import ExternalServer, Instance, Item
from annotation.services.imports import ImportWorker
from tests.frontend.test_browser_import import log_in
from tests.orthanc_server import cine_study, orthanc_running

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    with orthanc_running(tmp_path_factory.mktemp("orthanc")) as server:
        studies = [
            cine_study(
                patient_id="BRW-001",
                patient_name="ALPHA^ANNA",
                accession="ACC-1",
                description="LEFT CORONARY",
                date="20240301",
                runs=2,
                seed=700,
            ),
            cine_study(
                patient_id="BRW-002",
                patient_name="BRAVO^BEN",
                accession="ACC-2",
                description="RIGHT CORONARY",
                date="20240405",
                runs=1,
                seed=710,
            ),
        ]
        for study in studies:
            for data in study.files:
                server.store(data)
        yield server, studies


@pytest.fixture
def import_worker(settings):
    settings.LUMEN_DICOMWEB_URL = ""
    worker = ImportWorker(idle_seconds=0.2)
    worker.start()
    yield worker
    worker.stop(timeout=30)


def test_a_lead_connects_the_pacs_searches_picks_a_study_and_imports_it(
    page, live_server, lead, vessel_project, pacs, import_worker, screenshot
):
    server, (anna, ben) = pacs
    log_in(page, live_server, lead.username)
    page.click(f"text={vessel_project.name}")
    page.wait_for_selector("#pacs[data-ready]", state="attached")
    assert "No server set yet" in page.locator("#pacs-server-state").inner_text()

    # A wrong password is named as such; the right one connects.
    page.fill("#pacs-server-form input[name=url]", server.dicomweb)
    page.fill("#pacs-server-form input[name=username]", server.username)
    page.fill("#pacs-server-form input[name=password]", "wrong-password")
    page.click("#pacs-server-form button[type=submit]")
    page.wait_for_function("document.getElementById('pacs-server-status').textContent.includes('401')")
    assert "refused the user name or password" in page.locator("#pacs-server-status").inner_text()
    page.fill("#pacs-server-form input[name=password]", server.password)
    page.click("#pacs-server-form button[type=submit]")
    page.wait_for_function("document.getElementById('pacs-server-status').textContent.startsWith('Connected to')")
    assert page.locator("#pacs-server-form input[name=password]").input_value() == ""
    stored = ExternalServer.objects.get(project=vessel_project)
    assert credential_decrypt(stored.secret) == server.password and server.password not in stored.secret

    # Everything, then narrowed by the patient's name.
    page.click("#pacs-search")
    page.wait_for_selector("#pacs-studies tbody tr >> nth=1")
    assert page.locator("#pacs-studies tbody tr").count() == 2
    page.fill("#pacs-search-form input[name=patient_name]", "ALPHA")
    page.click("#pacs-search")
    page.wait_for_function("document.querySelectorAll('#pacs-studies tbody tr').length === 1")
    row = page.locator("#pacs-studies tbody tr")
    assert row.get_attribute("data-study") == anna.uid
    assert "ALPHA^ANNA" in row.inner_text() and "2024-03-01" in row.inner_text()
    row.locator("input[type=checkbox]").check()
    assert page.locator("#pacs-picked").inner_text() == "1 study selected."

    page.click("#pacs-import")
    page.wait_for_function("document.getElementById('pacs-summary').textContent.includes('item(s) created')")
    assert page.locator("#pacs-summary").inner_text().startswith("2 stored, 0 duplicate, 0 rejected, 2 item(s)")
    assert page.locator("#pacs-job-bar").evaluate("bar => bar.value") == 1
    outcomes = page.locator("#pacs-outcomes tbody tr")
    assert outcomes.count() == 2
    assert all(anna.uid in outcomes.nth(i).inner_text() and "stored" in outcomes.nth(i).inner_text() for i in (0, 1))
    screenshot("pacs-import")
    assert Item.objects.filter(project=vessel_project).count() == 2 and Instance.objects.count() == 2

    # After a reload the password is not in the page; the form only says one is stored.
    page.reload()
    page.wait_for_selector("#pacs[data-ready]", state="attached")
    assert server.password not in page.content()
    password = page.locator("#pacs-server-form input[name=password]")
    assert password.input_value() == "" and "stored" in password.get_attribute("placeholder")


def test_annotators_have_no_pacs_card(page, live_server, annotator, vessel_project):
    log_in(page, live_server, annotator.username)
    page.click(f"text={vessel_project.name}")
    page.wait_for_selector("h1")
    assert page.locator("#pacs").count() == 0
