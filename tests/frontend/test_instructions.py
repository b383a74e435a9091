"""Labelling instructions: a lead writes Markdown, annotators read it beside the tool, and nothing in it can run."""

from __future__ import annotations

import pytest
from django.urls import reverse

from frontend.markdown import instructions_html
from tests import dicom_samples as samples
from tests.annotation.test_ingest import run
from tests.frontend.test_browser_import import log_in

GUIDE = """# Which artery?

- **LCA**: the catheter sits in the left main
- **RCA**: the right coronary fills

| view | usual |
|---|---|
| LAO 30 | RCA |

See [the protocol](https://example.org/protocol).
"""


def test_markdown_becomes_structure_and_nothing_that_can_run():
    html = instructions_html(
        GUIDE
        + '\n<script>alert(1)</script><img src=x onerror="alert(2)"> [bad](javascript:alert(3))'
        + '<a href="https://example.org" onclick="alert(4)">x</a><iframe src="https://example.org"></iframe>'
    )
    assert "<h1>Which artery?</h1>" in html and "<strong>LCA</strong>" in html and "<td>LAO 30</td>" in html
    assert 'href="https://example.org/protocol"' in html and 'rel="noopener noreferrer nofollow"' in html
    for forbidden in ("<script", "onerror", "onclick", "javascript:", "<iframe", "<img"):
        assert forbidden not in html, forbidden


@pytest.mark.django_db
def test_only_leads_change_the_instructions_and_their_length_is_bounded(vessel_project, lead, annotator, client_for):
    url = reverse("api:project-detail", args=[vessel_project.slug])
    assert client_for(annotator).patch(url, {"instructions": "mine"}, format="json").status_code == 403
    too_long = client_for(lead).patch(url, {"instructions": "x" * 20001}, format="json")
    assert too_long.status_code == 400 and "instructions" in too_long.json()
    saved = client_for(lead).patch(url, {"instructions": GUIDE}, format="json")
    assert saved.status_code == 200 and saved.json()["instructions"] == GUIDE
    vessel_project.refresh_from_db()
    assert vessel_project.instructions == GUIDE
    assert client_for(annotator).get(url).json()["instructions"] == GUIDE


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_lead_writes_instructions_and_the_annotator_reads_them_beside_the_tool(
    page, live_server, lead, annotator, vessel_project, screenshot
):
    run(vessel_project, ("run.dcm", samples.xa_bytes(seed=3, frames=6, size=48)))
    log_in(page, live_server, lead.username)
    page.goto(f"{live_server.url}/projects/{vessel_project.slug}/")
    page.fill("#settings-form textarea[name=instructions]", GUIDE + "\n<script>window.ran = true</script>")
    page.click("#settings-form button[type=submit]")
    page.wait_for_function("document.getElementById('settings-status').textContent === 'Saved.'")
    vessel_project.refresh_from_db()
    assert vessel_project.instructions.startswith("# Which artery?")

    page.context.clear_cookies()
    log_in(page, live_server, annotator.username)
    page.goto(f"{live_server.url}/projects/{vessel_project.slug}/label/")
    page.wait_for_selector("#workspace[data-state=ready]")
    box = page.locator("#instructions")
    assert box.locator("h1").inner_text() == "Which artery?"
    assert box.locator("table td").first.inner_text() == "LAO 30"
    assert box.locator("script").count() == 0 and page.evaluate("window.ran") is None
    screenshot("workspace-instructions")
