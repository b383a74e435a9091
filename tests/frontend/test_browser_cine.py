"""In a real browser: an annotator plays XA runs in the cine tool and labels the vessel by keyboard and mouse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from annotation.ingest.pipeline import view_name
from annotation.ingest.sources import ArchiveLimits, sources_from_path
from annotation.models import Item, Label, ModelStatus, ModelVersion, Prediction
from annotation.services import import_run
from learning.cohorts import XaView, fake_patient, write_xa_run
from tests.frontend.test_browser_import import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

READY = "#workspace[data-state='ready']"
FRAMES = 12
SIZE = 128
VIEWS = [XaView(30, 20, 1000, 750), XaView(-25, -15, 1000, 750)]


def import_runs(project, folder: Path) -> list[Item]:
    rng = np.random.default_rng(5)
    for index, view in enumerate(VIEWS):
        write_xa_run(
            folder / f"run{index}.dcm",
            vessel=("LCA", "RCA")[index],
            rng=rng,
            patient=fake_patient(rng, index),
            frames=FRAMES,
            size=SIZE,
            view=view,
        )
    report = import_run(project=project, sources=sources_from_path(folder, limits=ArchiveLimits(members=10)))
    assert report.summary()["items_created"] == len(VIEWS), report.summary()
    return list(Item.objects.filter(project=project).select_related("instance"))


def open_workspace(page, live_server, project, query: str = "") -> Item:
    page.goto(f"{live_server.url}/projects/{project.slug}/label/{query}")
    page.wait_for_selector(READY)
    item_id = int(page.get_attribute("#workspace", "data-item-id"))
    page.wait_for_function("id => window.lumenCine && window.lumenCine.itemId === id", arg=item_id)
    return Item.objects.select_related("instance").get(pk=item_id)


def frame_number(page) -> int:
    return int(page.get_attribute(".vessel-tool", "data-frame"))


def wait_all_frames(page) -> None:
    page.wait_for_function(
        "() => window.lumenCine.allFramesMs !== null && window.lumenCine.ready === window.lumenCine.frames"
    )


def test_annotator_plays_the_run_and_labels_two_items_by_keyboard_and_mouse(
    page, live_server, annotator, vessel_project, tmp_path, screenshot
):
    import_runs(vessel_project, tmp_path)
    log_in(page, live_server, annotator.username)
    first = open_workspace(page, live_server, vessel_project)

    # What the run is: the C-arm view from the stored angles and the frame count.
    assert page.inner_text("#cine-view") == view_name(first.instance)
    assert page.inner_text("#cine-frame") == f"Frame 1 / {FRAMES}"
    assert "Play / pause" in page.inner_text("#shortcuts")
    assert page.locator("#vessel-prediction").count() == 0  # predictions are hidden by default
    wait_all_frames(page)
    page.evaluate("window.sameDocument = true")  # gone if anything reloads the page

    # Frame step, play and pause from the keyboard.
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.inner_text("#cine-frame") == f"Frame 3 / {FRAMES}"
    page.keyboard.press("ArrowLeft")
    assert frame_number(page) == 1
    page.keyboard.press("Space")
    page.wait_for_function("() => document.querySelector('.vessel-tool').dataset.frame !== '1'")
    page.keyboard.press("Space")
    assert page.get_attribute(".vessel-tool", "data-playing") == "false"
    paused_at = frame_number(page)
    page.wait_for_timeout(300)
    assert frame_number(page) == paused_at
    # Speed, zoom, brightness and contrast.
    page.keyboard.press("+")
    assert page.inner_text("#cine-speed").startswith("1.5×")
    page.keyboard.press("z")
    assert "zoom 125%" in page.inner_text("#cine-zoom")
    page.keyboard.press("]")
    page.keyboard.press("}")
    assert page.evaluate("document.getElementById('cine-canvas').style.filter") == "brightness(1.1) contrast(1.1)"
    page.keyboard.press("0")
    assert "zoom 100%" in page.inner_text("#cine-zoom")
    # The scrub bar jumps to a frame (clicking near the end).
    scrub = page.locator("#cine-scrub")
    box = scrub.bounding_box()
    scrub.click(position={"x": box["width"] - 4, "y": box["height"] / 2})
    assert frame_number(page) == FRAMES - 1

    # No label chosen yet: the submit is refused with a message.
    page.keyboard.press("Enter")
    assert "Choose the vessel" in page.inner_text("#status")
    assert Label.objects.count() == 0

    page.keyboard.press("2")
    assert page.get_attribute("#vessel-choice [data-vessel=RCA]", "aria-pressed") == "true"
    page.keyboard.press("Enter")
    page.wait_for_function(
        "id => document.querySelector('#workspace').dataset.state === 'ready' && window.lumenCine.itemId !== id",
        arg=first.pk,
    )
    assert page.evaluate("window.sameDocument") is True
    second = Item.objects.select_related("instance").get(pk=int(page.get_attribute("#workspace", "data-item-id")))
    assert second.pk != first.pk
    assert page.inner_text("#cine-view") == view_name(second.instance)

    # The mouse: "unusable" needs a reason before the submit goes through.
    page.click("#vessel-choice [data-vessel=unusable]")
    assert page.is_visible("#unusable-reason")
    page.click("#submit")
    assert "Say why the run is unusable" in page.inner_text("#status")
    assert Label.objects.filter(item=second).count() == 0
    page.fill("#unusable-reason", "contrast never reaches the vessels")
    screenshot("cine-tool")
    page.press("#unusable-reason", "Enter")  # Enter in the reason field submits too
    page.wait_for_selector("#workspace[data-state='done']", state="attached")

    # A reload reopens the item in the address bar (the second) with its stored label.
    page.reload()
    page.wait_for_selector(READY)
    assert int(page.get_attribute("#workspace", "data-item-id")) == second.pk
    assert page.get_attribute("#vessel-choice [data-vessel=unusable]", "aria-pressed") == "true"
    assert page.input_value("#unusable-reason") == "contrast never reaches the vessels"
    labels = {label.item_id: label for label in Label.objects.filter(author=annotator)}
    assert labels[first.pk].payload == {"vessel": "RCA"}
    assert labels[second.pk].payload == {"vessel": "unusable", "unusable_reason": "contrast never reaches the vessels"}
    for label in labels.values():
        assert label.version == 1 and label.time_spent_ms > 0 and label.superseded_at is None

    # Reopening the first item shows the stored label; changing it stores version 2.
    open_workspace(page, live_server, vessel_project, f"?item={first.pk}")
    assert page.get_attribute("#vessel-choice [data-vessel=RCA]", "aria-pressed") == "true"
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('#workspace').dataset.lastLabelId")
    versions = list(Label.objects.filter(item=first, author=annotator).order_by("version"))
    assert [(v.version, v.payload["vessel"]) for v in versions] == [(1, "RCA"), (2, "LCA")]
    assert versions[0].superseded_at is not None and versions[1].superseded_at is None


def test_model_suggestion_shows_only_where_the_project_allows_it(
    page, live_server, annotator, vessel_project, tmp_path
):
    items = import_runs(vessel_project, tmp_path)
    model = ModelVersion.objects.create(
        project=vessel_project, number=1, family="r2plus1d", status=ModelStatus.CHAMPION
    )
    for item in items:
        Prediction.objects.create(item=item, model_version=model, output={"probabilities": {"LCA": 0.8, "RCA": 0.2}})
    log_in(page, live_server, annotator.username)
    open_workspace(page, live_server, vessel_project)
    assert page.locator("#vessel-prediction").count() == 0

    vessel_project.settings = {**vessel_project.settings, "show_predictions_to_annotators": True}
    vessel_project.save(update_fields=["settings"])
    open_workspace(page, live_server, vessel_project)
    suggestion = page.inner_text("#vessel-prediction")
    assert "Model suggestion" in suggestion and "LCA 80%" in suggestion and "RCA 20%" in suggestion
    # A suggestion is not a label: nothing is chosen until the annotator chooses.
    assert page.locator("#vessel-choice [aria-pressed=true]").count() == 0


def test_the_label_page_shows_the_first_frame_before_the_player_loads_and_the_player_takes_it_over(
    page, live_server, annotator, vessel_project, tmp_path
):
    import_runs(vessel_project, tmp_path)
    log_in(page, live_server, annotator.username)
    frame_requests: list[str] = []
    page.on("request", lambda request: frame_requests.append(request.url) if "/frames/0/" in request.url else None)
    held = []  # the player's module is held back until the page has been looked at
    page.route("**/tools/vessel_type.js", lambda route: held.append(route))
    page.goto(f"{live_server.url}/projects/{vessel_project.slug}/label/")
    # No script of the tool has run, yet frame 0 of the handed-out run is on screen at full size.
    page.wait_for_function("() => { const i = document.getElementById('first-frame'); return i && i.complete; }")
    assert page.evaluate("document.getElementById('first-frame').naturalWidth") == SIZE
    assert page.locator("#first-frame").is_visible() and page.locator("#cine-canvas").count() == 0
    assert page.get_attribute("#workspace", "data-state") == "loading"
    page.wait_for_timeout(200)
    assert held, "the page never asked for the player's module"
    for route in held:
        route.continue_()
    page.wait_for_selector(READY)
    item_id = int(page.get_attribute("#workspace", "data-item-id"))
    page.wait_for_function("id => window.lumenCine && window.lumenCine.itemId === id", arg=item_id)
    # The player drew the same image on its canvas; frame 0 came in the page, and nothing asked the server for it.
    assert page.locator("#first-frame").count() == 0 and page.locator("#cine-canvas").is_visible()
    assert page.evaluate("window.lumenCine.firstFrameMs") is not None
    assert page.inner_text("#cine-frame") == f"Frame 1 / {FRAMES}"
    # (the next item's frame 0 is warmed ahead while this one is labelled)
    assert page.evaluate("window.lumenCine.inPage") > 0
    assert [u for u in frame_requests if f"/items/{item_id}/frames/0/" in u] == [], frame_requests
    drawn = page.evaluate(
        """() => { const c = document.getElementById('cine-canvas');
                   const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let sum = 0; for (let i = 0; i < px.length; i += 4) sum += px[i]; return sum; }"""
    )
    assert drawn > 0  # not a blank canvas
    wait_all_frames(page)
