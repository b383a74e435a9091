"""In a real browser: the cine player's smooth 2× shows interpolated frames between the acquired ones, each marked
synthetic, only where the project has a frame-interpolation model."""

from __future__ import annotations

import pytest

from annotation.models import Label
from tests.annotation.test_interpolated_frames import interpolation_model
from tests.frontend import test_browser_csp as csp
from tests.frontend.test_browser_cine import FRAMES, READY, import_runs, open_workspace, wait_all_frames
from tests.frontend.test_browser_import import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
strict_page = csp.strict_page  # a page under the site's content security policy, no bypass

SYNTHETIC_ON_SCREEN = """() => {
  const tool = document.querySelector('.vessel-tool');
  const badge = document.getElementById('cine-synthetic');
  const label = document.getElementById('cine-frame').textContent;
  return tool.dataset.synthetic === 'true' && badge.checkVisibility()
    && /^Frame \\d+½ \\/ \\d+ \\(synthetic\\)$/.test(label);
}"""


def synthetic_shown(page) -> int:
    return page.evaluate("window.lumenCine.syntheticShown")


def test_smooth_playback_shows_interpolated_frames_marked_synthetic(
    page, live_server, annotator, vessel_project, tmp_path, screenshot
):
    import_runs(vessel_project, tmp_path)
    model = interpolation_model(vessel_project)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url) if "/interpolated/" in request.url else None)
    held: list = []  # interpolated frames held back until the fallback to acquired frames has been seen
    holding = [True]
    page.route("**/interpolated/**", lambda route: held.append(route) if holding[0] else route.continue_())
    log_in(page, live_server, annotator.username)
    first = open_workspace(page, live_server, vessel_project)

    smooth = page.locator("#cine-smooth")
    assert smooth.is_visible() and smooth.get_attribute("aria-pressed") == "false"
    assert "Smooth 2×" in page.inner_text("#shortcuts")
    wait_all_frames(page)
    assert requested == []  # nothing is computed for an annotator who never turns it on

    page.keyboard.press("i")
    assert smooth.get_attribute("aria-pressed") == "true"
    assert "(smooth)" in page.inner_text("#cine-speed")
    page.wait_for_function("() => document.getElementById('cine-smooth-state').textContent === 'interpolated 0 / 11'")
    # While the interpolated frames are still loading, playback goes on with the acquired frames alone.
    page.keyboard.press("Space")
    page.wait_for_function("() => Number(document.querySelector('.vessel-tool').dataset.frame) >= 4")
    assert synthetic_shown(page) == 0 and held
    page.keyboard.press("Space")
    holding[0] = False
    for route in held:
        route.continue_()
    page.wait_for_function("() => window.lumenCine.smoothReady === window.lumenCine.smoothFrames")
    assert page.evaluate("window.lumenCine.smoothFrames") == FRAMES - 1
    expected = {f"/api/items/{first.pk}/frames/{n}/interpolated/{model.pk}/" for n in range(FRAMES - 1)}
    assert {url.removeprefix(live_server.url) for url in requested} == expected
    assert page.inner_text("#cine-smooth-state") == ""

    # Playing now shows the in-between frames, each marked synthetic (badge, frame counter, data attribute).
    page.keyboard.press("-")
    page.keyboard.press("-")  # 0.25×: each picture stays on screen longer
    page.keyboard.press("Space")
    page.wait_for_function(SYNTHETIC_ON_SCREEN)
    screenshot("cine-smooth-synthetic")
    page.wait_for_function("() => window.lumenCine.syntheticShown >= 3")
    # Pausing never leaves a synthetic picture on screen; stepping moves between acquired frames.
    page.keyboard.press("Space")
    assert page.get_attribute(".vessel-tool", "data-synthetic") == "false"
    assert not page.locator("#cine-synthetic").is_visible()
    frame = int(page.get_attribute(".vessel-tool", "data-frame"))
    page.keyboard.press("ArrowRight")
    assert page.inner_text("#cine-frame") == f"Frame {(frame + 1) % FRAMES + 1} / {FRAMES}"
    assert page.get_attribute(".vessel-tool", "data-synthetic") == "false"

    # Off again (by mouse): playback shows acquired frames only.
    smooth.click()
    assert smooth.get_attribute("aria-pressed") == "false"
    shown = synthetic_shown(page)
    page.keyboard.press("Space")
    page.wait_for_timeout(600)
    page.keyboard.press("Space")
    assert synthetic_shown(page) == shown

    # Labelling is unaffected; the next item starts with smooth playback as it was last left (on).
    page.keyboard.press("i")
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "id => document.querySelector('#workspace').dataset.state === 'ready' && window.lumenCine.itemId !== id",
        arg=first.pk,
    )
    assert Label.objects.get(item=first, author=annotator).payload == {"vessel": "RCA"}
    assert page.get_attribute("#cine-smooth", "aria-pressed") == "true"
    second = int(page.get_attribute("#workspace", "data-item-id"))
    page.wait_for_function("() => window.lumenCine.smoothReady === window.lumenCine.smoothFrames")
    assert any(f"/api/items/{second}/frames/" in url for url in requested)


def test_without_a_model_there_is_no_smooth_playback(page, live_server, annotator, vessel_project, tmp_path):
    import_runs(vessel_project, tmp_path)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url) if "/interpolated/" in request.url else None)
    log_in(page, live_server, annotator.username)
    open_workspace(page, live_server, vessel_project)
    page.wait_for_selector(READY)
    assert page.locator("#cine-smooth").count() == 0
    assert page.locator("#cine-smooth-state").count() == 0
    assert "Smooth" not in page.inner_text("#shortcuts")
    wait_all_frames(page)
    page.keyboard.press("i")
    page.keyboard.press("Space")
    page.wait_for_timeout(500)
    page.keyboard.press("Space")
    assert page.get_attribute(".vessel-tool", "data-synthetic") == "false"
    assert requested == []


def test_smooth_playback_runs_under_the_content_security_policy(
    strict_page, live_server, annotator, vessel_project, tmp_path
):
    import_runs(vessel_project, tmp_path)
    interpolation_model(vessel_project)
    page = strict_page
    log_in(page, live_server, annotator.username)
    page.goto(f"{live_server.url}/projects/{vessel_project.slug}/label/")
    page.wait_for_selector(READY)
    page.click("#cine-smooth")
    page.wait_for_selector("#cine-smooth[aria-pressed=true]")
    page.keyboard.press("Space")
    page.wait_for_selector(".vessel-tool[data-synthetic=true] #cine-synthetic:not([hidden])", state="attached")
    assert csp._violations(page) == []
