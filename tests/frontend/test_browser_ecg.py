"""In a real browser: a lead opens the project's ECGs and sees one drawn as a 12-lead plot on ECG paper."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from annotation.models import Ecg
from tests.annotation.test_ingest import run
from tests.frontend.test_browser_csp import _violations, policed_page
from tests.frontend.test_browser_import import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
SOURCE = Path(get_testdata_file("waveform_ecg.dcm"))


def test_lead_opens_the_ecg_and_sees_twelve_labelled_traces_with_a_time_scale(
    page, live_server, lead, vessel_project, screenshot
):
    assert run(vessel_project, ("ecg.dcm", SOURCE.read_bytes())).summary()["stored"] == 1
    ecg = Ecg.objects.get()

    log_in(page, live_server, lead.username)
    page.goto(f"{live_server.url}/projects/{vessel_project.slug}/")
    page.click("#ecgs-link")
    page.wait_for_selector("#ecg-table")
    assert ecg.patient.pseudonym in page.locator("#ecg-table").inner_text()
    page.click(f"#ecg-table tr[data-ecg='{ecg.pk}'] a")
    page.wait_for_selector("#ecg[data-state=ready]")

    leads = page.locator("#ecg-plot g.ecg-lead")
    assert leads.count() == 12
    assert [leads.nth(i).get_attribute("data-lead") for i in range(12)] == LEADS
    assert page.locator("#ecg-plot .lead-label").all_text_contents() == LEADS
    # Every trace is drawn with every sample of the 10 s window (1000 Hz), and it moves: not a flat line.
    for i in range(12):
        d = leads.nth(i).locator("path.trace").get_attribute("d")
        ys = [float(y) for y in re.findall(r"[ML][\d.]+ (-?[\d.]+)", d)]
        assert len(ys) == 10000, LEADS[i]
        assert max(ys) - min(ys) > 1, LEADS[i]  # more than 1 mm (0.1 mV) of deflection
    assert leads.nth(0).locator("path.trace").get_attribute("data-points") == "10000"
    ticks = page.locator("#ecg-plot .time-axis .tick-label").all_text_contents()
    assert ticks == [f"{s} s" for s in range(11)]
    assert page.locator("#ecg-plot .axis-title").text_content() == "time (s)"
    assert page.locator("#ecg-plot .amplitude-scale").text_content() == "1 mV"
    assert page.locator("#ecg-plot path.calibration").count() == 12
    assert "12 leads, 0.00–10.00 s of 10.00 s" in page.locator("#ecg-status").inner_text()
    # The trace is really painted: the plot's pixels hold dark ink beside the pink paper.
    image = page.locator("#ecg-plot").screenshot()
    assert _dark_pixel_share(image) > 0.005
    screenshot("ecg")

    page.select_option("#ecg-seconds", "2.5")
    page.wait_for_selector("#ecg[data-state=ready]")
    page.click("#ecg-later")
    page.wait_for_function("document.querySelector('#ecg-status').textContent.includes('2.50–5.00 s')")
    assert page.locator("#ecg-plot .time-axis .tick-label").all_text_contents()[0] == "2.5 s"
    assert page.locator("#ecg-plot g.ecg-lead path.trace").first.get_attribute("data-points") == "2500"


def _dark_pixel_share(png: bytes) -> float:
    import io

    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        pixels = np.asarray(image.convert("L"))
    return float((pixels < 80).mean())


@pytest.fixture
def strict_page(browser):
    """A page under the site's content security policy (no bypass), recording what it refuses."""
    with policed_page(browser) as page:
        yield page


def test_the_ecg_pages_run_under_the_content_security_policy(strict_page, live_server, lead, vessel_project):
    run(vessel_project, ("ecg.dcm", SOURCE.read_bytes()))
    ecg = Ecg.objects.get()
    log_in(strict_page, live_server, lead.username)
    strict_page.wait_for_selector("#projects")
    for path, ready in [
        (f"/projects/{vessel_project.slug}/ecgs/", "#ecg-table"),
        (f"/projects/{vessel_project.slug}/ecgs/{ecg.pk}/", "#ecg[data-state=ready]"),
    ]:
        strict_page.goto(f"{live_server.url}{path}")
        strict_page.wait_for_selector(ready)
        assert _violations(strict_page) == [], path
    assert strict_page.locator("#ecg-plot g.ecg-lead").count() == 12
