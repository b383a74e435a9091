"""In a real browser: a lead sets the phases of a two-frame SPECT file that did not state them, and it pairs."""

from __future__ import annotations

import pytest

from annotation.models import Item, PolarMap
from tests.annotation.test_spect_pairing import nm_map, run
from tests.frontend.test_browser_import import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_lead_sets_rest_and_stress_on_the_pairing_list(page, live_server, lead, spect_project, screenshot):
    run(spect_project, "maps.dcm", nm_map(frames=2, description="POLAR MAPS"))
    first, second = PolarMap.objects.order_by("frame_index")
    log_in(page, live_server, lead.username)
    page.goto(f"{live_server.url}/projects/{spect_project.slug}/")
    page.wait_for_selector("#spect-pairing[data-ready]", state="attached")
    rows = page.locator("#pairing-maps tbody tr")
    assert rows.count() == 2 and "not stated" in rows.first.inner_text()
    thumbnail = page.locator(f"tr[data-map='{first.pk}'] img")
    thumbnail.evaluate("img => img.decode()")  # the row is drawn before its image has arrived: wait for it
    assert thumbnail.evaluate("img => img.complete && img.naturalWidth") == 64
    screenshot("spect-pairing")
    page.locator(f"tr[data-map='{second.pk}'] button", has_text="Stress").click()
    page.wait_for_function("document.getElementById('pairing-status').textContent.includes('waiting for the other')")
    assert "stress: waiting for the other phase" in page.locator(f"tr[data-map='{second.pk}']").inner_text()
    page.locator(f"tr[data-map='{first.pk}'] button", has_text="Rest").click()
    page.wait_for_function("document.getElementById('pairing-status').textContent.includes('ready to label')")
    item = Item.objects.get(kind="spect_pair")
    assert f"item {item.pk}" in page.locator("#pairing-status").inner_text()
    assert page.locator("#pairing-empty").is_visible()
    assert (item.spect.rest, item.spect.stress) == (first, second)
