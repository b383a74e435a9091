"""The lead's Label Studio card: the server is checked before it is saved, the token is never shown again, and a
Label Studio JSON file goes out and comes back in with what became of each annotation. (Push and pull against a
real Label Studio: tests/annotation/test_label_studio.py.)"""

from __future__ import annotations

import json

import pytest

from annotation.models import Label, LabelSource
from benchmarks.al_http import free_port
from tests.annotation.test_ingest import run
from tests.dicom_samples import xa_bytes
from tests.frontend.test_browser_import import log_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_a_lead_saves_a_server_and_moves_labels_through_a_label_studio_file(
    page, live_server, lead, annotator, vessel_project, tmp_path, screenshot
):
    annotator.email = "annotator@lumen.example"
    annotator.save(update_fields=["email"])
    run(vessel_project, ("run.dcm", xa_bytes()))
    item = vessel_project.items.get()
    log_in(page, live_server, lead.username)
    page.goto(f"{live_server.url}/projects/{vessel_project.slug}/")
    page.wait_for_selector("#label-studio #ls-server-form")
    assert page.is_disabled("#ls-push") and page.is_disabled("#ls-pull")

    closed = f"http://127.0.0.1:{free_port()}"
    page.fill("#ls-server-form input[name=url]", closed)
    page.fill("#ls-server-form input[name=token]", "some-token")
    page.click("#ls-server-form button[type=submit]")
    page.wait_for_function("document.getElementById('ls-server-status').textContent.startsWith('Not saved')")
    assert "could not be reached" in page.inner_text("#ls-server-status")
    assert not vessel_project.external_servers.exists()

    vessel = {"from_name": "vessel", "to_name": "image", "type": "choices", "value": {"choices": ["RCA"]}}
    tasks = [
        {
            "data": {"lumen_item": item.pk},
            "annotations": [
                {"id": 7, "result": [vessel], "completed_by": {"email": "annotator@lumen.example"}},
                {"id": 8, "result": [vessel], "completed_by": {"email": "nobody@lumen.example"}},
            ],
        }
    ]
    file = tmp_path / "tasks.json"
    file.write_text(json.dumps(tasks))
    page.set_input_files("#ls-import-file", str(file))
    page.click("#ls-import")
    page.wait_for_function("document.getElementById('ls-status').textContent.startsWith('Imported')")
    assert page.inner_text("#ls-counts dd[data-count=created]") == "1"
    assert "nobody@lumen.example, who is not a member of this project" in page.inner_text("#ls-rejected")
    label = Label.objects.get(item=item)
    assert (label.author, label.payload, label.source) == (annotator, {"vessel": "RCA"}, LabelSource.LABEL_STUDIO)
    screenshot("label-studio-card")

    with page.expect_download() as download:
        page.click("#ls-export")
    (row,) = json.loads(download.value.path().read_text())
    assert row["data"]["lumen_item"] == item.pk
    assert row["annotations"][0]["completed_by"] == {"email": "annotator@lumen.example"}
    assert row["annotations"][0]["result"] == [vessel]
