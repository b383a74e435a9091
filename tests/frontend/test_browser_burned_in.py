"""In a real browser: a lead sees the files held for burned-in text, drags a box and masks one, excludes another."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.conf import settings

from annotation.models import Instance
from tests.annotation.test_burned_in import _import, _run_bytes
from tests.frontend.test_browser_import import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_lead_masks_a_dragged_box_and_excludes_another_file(page, live_server, lead, vessel_project, screenshot):
    masked, excluded = _import(
        vessel_project, _run_bytes(text=None, burned_in="YES", seed=1), _run_bytes(text=None, burned_in="YES", seed=2)
    )
    log_in(page, live_server, lead.username)
    page.goto(f"{live_server.url}/projects/{vessel_project.slug}/")
    page.wait_for_selector("#burned-in[data-ready]", state="attached")
    cards = page.locator(".burned-in-file")
    assert cards.count() == 2
    assert "BurnedInAnnotation: YES" in cards.first.inner_text()
    first = page.locator(f".burned-in-file[data-instance='{masked.pk}']")
    canvas = first.locator("canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    scale = box["width"] / 128  # the 128-pixel frame is drawn 280 px wide
    page.mouse.move(box["x"] + 10 * scale, box["y"] + 20 * scale)
    page.mouse.down()
    page.mouse.move(box["x"] + 40 * scale, box["y"] + 50 * scale, steps=4)
    page.mouse.up()
    assert "1 box to mask" in first.locator(".box-count").inner_text()
    screenshot("burned-in-review")
    first.locator("button[data-decision=mask]").click()
    page.wait_for_function("document.getElementById('burned-in-status').textContent.includes('masked')")
    page.locator(f".burned-in-file[data-instance='{excluded.pk}'] button[data-decision=exclude]").click()
    page.wait_for_function("document.getElementById('burned-in-status').textContent.includes('excluded')")
    assert page.locator(".burned-in-file").count() == 0 and page.locator("#burned-in-empty").is_visible()
    masked.refresh_from_db()
    assert masked.burned_in_review == "masked"
    assert Instance.objects.get(pk=excluded.pk).burned_in_review == "excluded"
    pixels = pydicom.dcmread(Path(settings.MEDIA_ROOT) / masked.file_path).pixel_array
    assert (pixels[:, 22:48, 12:38] == 0).all()  # inside the dragged box (rounding aside)
    assert np.count_nonzero(pixels[:, 60:, 60:]) > 0  # the rest of the frame is untouched
