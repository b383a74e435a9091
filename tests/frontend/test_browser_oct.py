"""In a real browser: the OCT calcium tool paints a mask that round-trips exactly, measures it like Python does,
navigates the pullback, copies the previous frame's mask and excludes frames with a reason."""

from __future__ import annotations

import numpy as np
import pytest

from annotation.ingest.sources import ArchiveLimits, sources_from_path
from annotation.models import Item, Label, ModelStatus, ModelVersion, Prediction
from annotation.services import import_run
from learning.cohorts import generate_oct_cohort
from learning.cohorts.ivoct import render_oct_pullback
from learning.masks import mask_decode, mask_encode
from learning.oct_measure import calcium_bins, calcium_measurements
from tests.frontend.test_browser_csp import _violations as violations
from tests.frontend.test_browser_csp import policed_page
from tests.frontend.test_browser_import import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

READY = "#workspace[data-state='ready']"
MASK_RGB = (255, 176, 32)  # the tool's mask colour (oct_calcium.js)
FRAMES = 6
SIZE = 96

# Runs in the page: import the browser's modules and measure/encode each mask given as flat 0/1 pixels.
PARITY_JS = """
async ({masks, spacing}) => {
  const rle = await import("/static/frontend/lib/mask-rle.js");
  const measure = await import("/static/frontend/lib/oct-measure.js");
  return masks.map(({rows, cols, pixels, encoded}) => {
    const mask = Uint8Array.from(pixels);
    const decoded = rle.decodeMask(encoded);
    return {
      encoded: rle.encodeMask(mask, rows, cols),
      decoded: Array.from(decoded.data),
      bins: Array.from(measure.calciumBins(mask, rows, cols).counts),
      plain: measure.calciumMeasurements(mask, rows, cols),
      spaced: measure.calciumMeasurements(mask, rows, cols, {pixelSpacingMm: spacing}),
    };
  });
}
"""


def parity_masks() -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    dy, dx = np.mgrid[0:201, 0:201] - 100
    radius = np.sqrt(dy * dy + dx * dx)
    single = np.zeros((9, 9), bool)
    single[4, 7] = True
    diagonal = np.zeros((21, 21), bool)
    np.fill_diagonal(diagonal, True)  # exactly 45° and 225° from the centre: the bins the nudge decides
    render = render_oct_pullback(rng=np.random.default_rng(4), frames=8, size=128)
    realistic = render.masks[int(np.argmax(render.masks.sum(axis=(1, 2))))]
    assert realistic.any()
    return [
        np.zeros((4, 6), bool),
        np.ones((3, 5), bool),
        single,
        diagonal,
        rng.random((37, 53)) > 0.7,
        (radius >= 60) & (radius <= 90),
        (radius >= 30) & (radius <= 90) & (dy >= 0) & (dx > 0),
        (radius >= 30) & (radius <= 40),  # the thin ring whose empty bins must agree too
        realistic,
    ]


def test_browser_measurements_and_encoding_match_python(page, live_server):
    masks = parity_masks()
    spacing = [0.0125, 0.0125]
    page.goto(f"{live_server.url}/login/")
    payload = [
        {"rows": m.shape[0], "cols": m.shape[1], "pixels": m.ravel().astype(int).tolist(), "encoded": mask_encode(m)}
        for m in masks
    ]
    results = page.evaluate(PARITY_JS, {"masks": payload, "spacing": spacing})
    for index, (mask, js) in enumerate(zip(masks, results, strict=True)):
        assert js["encoded"] == mask_encode(mask), index
        assert js["decoded"] == mask.ravel().astype(int).tolist(), index
        assert js["bins"] == calcium_bins(mask)[0].tolist(), index
        for key, python in (
            ("plain", calcium_measurements(mask)),
            ("spaced", calcium_measurements(mask, None, spacing)),
        ):
            shown = js[key]
            assert (shown["arcDegrees"], shown["areaPx"]) == (python.arc_degrees, python.area_px), (index, key)
            assert shown["maxThicknessPx"] == pytest.approx(python.max_thickness_px, rel=1e-12), (index, key)
            if python.area_mm2 is None:
                assert shown["areaMm2"] is None and shown["maxThicknessMm"] is None
            else:
                assert shown["areaMm2"] == pytest.approx(python.area_mm2, rel=1e-12)
                assert shown["maxThicknessMm"] == pytest.approx(python.max_thickness_mm, rel=1e-12)


def test_polygon_fill_covers_the_pixels_whose_centres_are_inside(page, live_server):
    page.goto(f"{live_server.url}/login/")
    filled = page.evaluate(
        """async (shapes) => {
          const { fillPolygon } = await import("/static/frontend/lib/mask-paint.js");
          return shapes.map((points) => {
            const mask = new Uint8Array(10 * 12);
            fillPolygon(mask, 10, 12, points.map(([x, y]) => ({ x, y })));
            return Array.from(mask);
          });
        }""",
        [[[3, 2], [8, 2], [8, 6], [3, 6]], [[0, 0], [8, 0], [0, 8]]],
    )
    rectangle = np.array(filled[0], bool).reshape(10, 12)
    expected = np.zeros((10, 12), bool)
    expected[2:6, 3:8] = True  # x 3…8, y 2…6 holds the centres (col + ½, row + ½) of cols 3–7 and rows 2–5
    np.testing.assert_array_equal(rectangle, expected)
    triangle = np.array(filled[1], bool).reshape(10, 12)
    rows, cols = np.mgrid[0:10, 0:12]
    np.testing.assert_array_equal(triangle, (rows + 0.5) + (cols + 0.5) < 8)  # below the hypotenuse x + y = 8


# --- The tool in the workspace ------------------------------------------------------------------------------


@pytest.fixture
def oct_items(oct_project, tmp_path):
    """Import one small synthetic pullback; return its frame items in frame order."""
    cohort = tmp_path / "cohort"
    generate_oct_cohort(cohort, n_pullbacks=1, frames=FRAMES, size=SIZE, seed=5)
    report = import_run(project=oct_project, sources=sources_from_path(cohort, limits=ArchiveLimits(members=10)))
    assert report.summary()["items_created"] == FRAMES, report.as_json()
    return list(Item.objects.filter(project=oct_project).order_by("frame_index"))


def open_item(page, live_server, project, item) -> None:
    page.goto(f"{live_server.url}/projects/{project.slug}/label/?item={item.pk}")
    page.wait_for_selector(READY)
    page.wait_for_selector(f"#oct-tool[data-shown-frame='{item.frame_index}']")
    assert int(page.get_attribute("#workspace", "data-item-id")) == item.pk


def canvas_point(page, row: float, col: float) -> tuple[float, float]:
    """Screen position of a point given in source pixels (the canvas is scaled by CSS)."""
    box = page.locator("#oct-canvas").bounding_box()
    return box["x"] + col * box["width"] / SIZE, box["y"] + row * box["height"] / SIZE


def paint(page, points: list[tuple[float, float]]) -> None:
    page.mouse.move(*canvas_point(page, *points[0]))
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*canvas_point(page, *point), steps=4)
    page.mouse.up()


def page_mask(page) -> dict:
    return page.evaluate("window.lumenOct.mask()")


def tool_state(page) -> dict:
    return page.evaluate("window.lumenOct.state()")


def area(page) -> int:
    return int(page.get_attribute("#oct-area", "data-value"))


def submit(page) -> Label:
    submitted = page.get_attribute("#workspace", "data-item-id")
    page.keyboard.press("Enter")
    page.wait_for_selector("#workspace[data-last-label-id]")
    # Wait until the shell has moved on: leaving the page while the submitted item is still mounted would
    # save it as a draft again (the shell saves the mounted item's draft when the page is hidden).
    page.wait_for_function(
        """(submitted) => {
          const ws = document.getElementById("workspace");
          return ws.dataset.state === "done" || (ws.dataset.state === "ready" && ws.dataset.itemId !== submitted);
        }""",
        arg=submitted,
    )
    return Label.objects.get(pk=int(page.get_attribute("#workspace", "data-last-label-id")))


def test_annotator_paints_a_mask_with_mouse_and_keys_and_it_round_trips_exactly(
    page, live_server, annotator, oct_project, oct_items, screenshot
):
    item = oct_items[3]
    log_in(page, live_server, annotator.username)
    open_item(page, live_server, oct_project, item)
    assert "Labelling frame 4 of 6" in page.inner_text("#oct-banner")
    assert area(page) == 0

    page.keyboard.press("]")
    page.keyboard.press("]")
    assert tool_state(page)["size"] == 8 and page.inner_text("#oct-size") == "8 px"
    paint(page, [(15, 60), (25, 75), (45, 82)])
    painted = area(page)
    assert painted > 50
    page.keyboard.press("Control+z")
    assert area(page) == 0
    page.keyboard.press("Control+y")
    assert area(page) == painted
    page.keyboard.press("[")
    page.keyboard.press("e")  # erase a short stretch of the stroke
    paint(page, [(25, 70), (25, 80)])
    assert 0 < area(page) < painted

    page.keyboard.press("p")
    for row, col in [(70, 15), (80, 30), (88, 12)]:
        page.mouse.click(*canvas_point(page, row, col))
    assert tool_state(page)["polygon"] == 3
    before_polygon = area(page)
    page.keyboard.press("f")
    assert tool_state(page)["polygon"] == 0
    assert area(page) > before_polygon + 100  # the triangle covers ½·|det| = 150 source pixels

    shown_mask = page_mask(page)
    expected = calcium_measurements(mask_decode(shown_mask))
    assert int(page.get_attribute("#oct-arc", "data-value")) == expected.arc_degrees
    assert page.inner_text("#oct-arc") == f"{expected.arc_degrees}°"
    assert area(page) == expected.area_px
    assert float(page.get_attribute("#oct-thickness", "data-value")) == pytest.approx(expected.max_thickness_px)
    assert 30 < expected.arc_degrees < 200
    screenshot("oct-tool")

    label = submit(page)
    assert (label.item_id, label.author, label.version) == (item.pk, annotator, 1)
    assert label.payload["excluded"] is False
    assert label.payload["mask"] == shown_mask  # the exact encoding the page held…
    stored = mask_decode(label.payload["mask"])
    assert stored.shape == (SIZE, SIZE)
    np.testing.assert_array_equal(stored, mask_decode(shown_mask))  # …and so the exact pixels
    assert calcium_measurements(stored).arc_degrees == expected.arc_degrees

    open_item(page, live_server, oct_project, item)
    assert page_mask(page) == label.payload["mask"]
    assert "your label v1" in page.inner_text("#oct-source")
    assert int(page.get_attribute("#oct-arc", "data-value")) == expected.arc_degrees


def test_the_champion_prediction_is_the_editable_starting_mask_unless_the_project_hides_it(
    page, live_server, annotator, oct_project, oct_items
):
    predicted = np.zeros((SIZE, SIZE), bool)
    predicted[10:30, 60:75] = True
    champion = ModelVersion.objects.create(project=oct_project, number=1, family="unet", status=ModelStatus.CHAMPION)
    Prediction.objects.create(item=oct_items[1], model_version=champion, output={"mask": mask_encode(predicted)})
    log_in(page, live_server, annotator.username)

    open_item(page, live_server, oct_project, oct_items[1])
    assert "prediction" in page.inner_text("#status")
    assert "model v1 prediction" in page.inner_text("#oct-source")
    assert page_mask(page) == mask_encode(predicted)
    assert area(page) == 20 * 15
    page.keyboard.press("e")
    paint(page, [(20, 55), (20, 80)])  # erase a band across the predicted block
    edited = mask_decode(page_mask(page))
    assert 0 < edited.sum() < predicted.sum()
    label = submit(page)
    np.testing.assert_array_equal(mask_decode(label.payload["mask"]), edited)

    oct_project.settings = {**oct_project.settings, "show_predictions_to_annotators": False}
    oct_project.save(update_fields=["settings"])
    Prediction.objects.create(item=oct_items[2], model_version=champion, output={"mask": mask_encode(predicted)})
    open_item(page, live_server, oct_project, oct_items[2])
    assert area(page) == 0
    assert "prediction" not in page.inner_text("#oct-source")


def test_annotator_navigates_the_pullback_copies_the_previous_mask_and_excludes_a_frame(
    page, live_server, annotator, oct_project, oct_items, screenshot
):
    first, second, third = oct_items[2], oct_items[3], oct_items[4]
    log_in(page, live_server, annotator.username)
    open_item(page, live_server, oct_project, first)
    paint(page, [(20, 20), (30, 15), (50, 12)])
    first_label = submit(page)

    open_item(page, live_server, oct_project, second)
    page.wait_for_function("document.getElementById('oct-lmode-image').complete")
    assert page.evaluate("document.getElementById('oct-lmode-image').naturalWidth") == FRAMES
    assert page.locator(".oct-lmode-mark.oct-lmode-mask").count() == 1  # frame 3 is labelled now

    # Context frames: the view moves, the mask stays with the labelled frame and cannot be edited there.
    page.keyboard.press(".")
    page.wait_for_selector(f"#oct-tool[data-shown-frame='{second.frame_index + 1}']")
    assert "for context" in page.inner_text("#oct-banner")
    paint(page, [(40, 40), (50, 50)])
    assert area(page) == 0
    screenshot("oct-tool-context")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press(",")
    assert tool_state(page)["viewing"] == second.frame_index - 1
    page.keyboard.press("l")
    assert tool_state(page)["viewing"] == second.frame_index
    assert "Labelling frame" in page.inner_text("#oct-banner")

    page.keyboard.press("c")
    page.wait_for_function("window.lumenOct.measurements().areaPx > 0")
    assert page_mask(page) == first_label.payload["mask"]
    second_label = submit(page)
    assert second_label.payload["mask"] == first_label.payload["mask"]

    open_item(page, live_server, oct_project, third)
    assert page.get_attribute("#oct-exclude", "checked") is None
    empty = submit(page)  # an untouched frame is a complete label: no calcium
    assert mask_decode(empty.payload["mask"]).sum() == 0

    open_item(page, live_server, oct_project, third)
    page.keyboard.press("3")
    assert page.is_checked("#oct-exclude")
    assert page.input_value("#oct-exclude-reason") == "artifact"
    excluded = submit(page)
    assert excluded.item_id == third.pk and excluded.version == 2
    assert excluded.payload == {"excluded": True, "exclusion_reason": "artifact"}


def canvas_pixel(page, x: float, y: float) -> list[int]:
    """The colour the canvas shows at screen position (x, y): what the annotator sees there."""
    return page.evaluate(
        """([x, y]) => {
          const canvas = document.getElementById("oct-canvas");
          const rect = canvas.getBoundingClientRect();
          const px = Math.floor(((x - rect.left) * canvas.width) / rect.width);
          const py = Math.floor(((y - rect.top) * canvas.height) / rect.height);
          return Array.from(canvas.getContext("2d").getImageData(px, py, 1, 1).data);
        }""",
        [x, y],
    )


def zoom_level(page) -> float:
    return float(page.get_attribute("#oct-zoom", "data-zoom"))


def test_zoom_and_pan_paint_the_image_pixels_under_the_pointer(
    page, live_server, annotator, oct_project, oct_items, screenshot
):
    item = oct_items[2]
    log_in(page, live_server, annotator.username)
    open_item(page, live_server, oct_project, item)
    shortcuts = page.inner_text("#shortcuts")
    assert "Fit the whole frame" in shortcuts and "Hold and drag to pan" in shortcuts
    assert page.inner_text("#oct-zoom") == "100 %"
    for _ in range(3):
        page.keyboard.press("[")
    assert tool_state(page)["size"] == 1  # a one-pixel brush: each stamp sets the pixel under the pointer

    # Zoom in with the wheel around the centre of pixel (40, 50): that pixel stays under the pointer.
    box = page.locator("#oct-canvas").bounding_box()
    fit = box["width"] / SIZE  # CSS pixels per image pixel when the frame fits
    anchor = (40, 50)
    x0, y0 = canvas_point(page, anchor[0] + 0.5, anchor[1] + 0.5)
    page.mouse.move(x0, y0)
    page.mouse.wheel(0, -250)
    page.wait_for_function("Number(document.getElementById('oct-zoom').dataset.zoom) > 1.5")
    page.wait_for_timeout(100)  # the wheel may arrive as several events
    zoom = zoom_level(page)
    assert page.inner_text("#oct-zoom") == f"{round(zoom * 100)} %"

    def screen(row: float, col: float, shift: tuple[float, float] = (0, 0)) -> tuple[float, float]:
        """Where image point (row, col) is on screen now: the anchor stays under (x0, y0) plus the pan."""
        scale = fit * zoom
        return x0 + shift[0] + (col - anchor[1] - 0.5) * scale, y0 + shift[1] + (row - anchor[0] - 0.5) * scale

    page.mouse.click(x0, y0)
    assert set(zip(*np.nonzero(mask_decode(page_mask(page))), strict=True)) == {anchor}

    # Pan with the middle button: the frame moves with the pointer, nothing is painted.
    drag = (-70.0, 45.0)
    page.mouse.move(x0, y0)
    page.mouse.down(button="middle")
    page.mouse.move(x0 + drag[0], y0 + drag[1], steps=6)
    page.mouse.up(button="middle")
    assert area(page) == 1
    # …and with Space held and the left button.
    space_drag = (30.0, -20.0)
    page.keyboard.down("Space")
    assert "oct-pan-ready" in page.get_attribute("#oct-tool", "class")
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + space_drag[0], y0 + space_drag[1], steps=6)
    page.mouse.up()
    page.keyboard.up("Space")
    assert "oct-pan-ready" not in page.get_attribute("#oct-tool", "class")
    assert area(page) == 1 and zoom_level(page) == zoom
    shift = (drag[0] + space_drag[0], drag[1] + space_drag[1])

    # A stroke along row 44 from column 46 to 54, drawn where those pixels are on screen after zoom and pans.
    page.mouse.move(*screen(44.5, 46.5, shift))
    page.mouse.down()
    page.mouse.move(*screen(44.5, 54.5, shift), steps=8)
    page.mouse.up()
    expected = {anchor} | {(44, col) for col in range(46, 55)}
    assert set(zip(*np.nonzero(mask_decode(page_mask(page))), strict=True)) == expected
    # The mask is drawn where it was painted, to within a fifth of a pixel: hiding it changes the frame just inside
    # the painted pixels' edges and nothing just outside them.
    page.mouse.move(box["x"] + 2, box["y"] + 2)  # the brush outline off the stroke
    inside = [screen(row, col, shift) for row, col in [(44.2, 50.5), (44.8, 50.5), (44.5, 46.2), (44.5, 54.8)]]
    outside = [screen(row, col, shift) for row, col in [(43.8, 50.5), (45.2, 50.5), (44.5, 45.8), (44.5, 55.2)]]
    page.wait_for_timeout(100)
    shown = [canvas_pixel(page, *point) for point in inside + outside]
    screenshot("oct-zoomed")
    page.keyboard.press("h")
    page.wait_for_timeout(100)
    hidden = [canvas_pixel(page, *point) for point in inside + outside]
    page.keyboard.press("h")
    assert shown[len(inside) :] == hidden[len(inside) :]
    for seen, frame in zip(shown[: len(inside)], hidden[: len(inside)], strict=True):
        # The frame blended half and half with the mask's colour (opacity 0.5).
        blended = [(value + mask) / 2 for value, mask in zip(frame[:3], MASK_RGB, strict=True)]
        assert seen[:3] == [pytest.approx(value, abs=2) for value in blended], (shown, hidden)

    # The view stays while other frames of the pullback are shown.
    page.keyboard.press(".")
    page.wait_for_selector(f"#oct-tool[data-shown-frame='{item.frame_index + 1}']")
    assert zoom_level(page) == zoom
    page.keyboard.press("l")

    # Buttons and keys: + and − step the zoom, 0 fits the whole frame again.
    page.click("#oct-zoom-in")
    assert zoom_level(page) == pytest.approx(zoom * 1.25)
    page.keyboard.press("-")
    assert zoom_level(page) == pytest.approx(zoom)
    page.keyboard.press("0")
    assert page.inner_text("#oct-zoom") == "100 %" and tool_state(page)["centre"] == [SIZE / 2, SIZE / 2]
    assert page.locator("#oct-canvas").bounding_box() == box
    page.mouse.click(*canvas_point(page, 70.5, 20.5))  # at fit, screen and image agree as they did before zooming
    expected.add((70, 20))

    label = submit(page)
    stored = mask_decode(label.payload["mask"])
    assert stored.shape == (SIZE, SIZE)
    assert set(zip(*np.nonzero(stored), strict=True)) == expected


def test_pan_mode_drags_the_frame_and_the_zoom_carries_to_the_next_frame_of_the_pullback(
    page, live_server, annotator, oct_project, oct_items
):
    log_in(page, live_server, annotator.username)
    open_item(page, live_server, oct_project, oct_items[0])
    page.keyboard.press("+")
    page.keyboard.press("=")
    assert zoom_level(page) == pytest.approx(1.5625)
    assert tool_state(page)["centre"] == [SIZE / 2, SIZE / 2]  # keys zoom around the middle of the view
    page.click("#oct-pan")
    assert page.get_attribute("#oct-pan", "aria-pressed") == "true" and tool_state(page)["panMode"]
    box = page.locator("#oct-canvas").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 40, y + 25, steps=4)
    page.mouse.up()
    assert area(page) == 0  # in pan mode a drag moves the frame, it never paints
    scale = box["width"] / SIZE * 1.5625
    cy, cx = tool_state(page)["centre"]
    assert (cy, cx) == (pytest.approx(SIZE / 2 - 25 / scale), pytest.approx(SIZE / 2 - 40 / scale))
    page.keyboard.press("m")
    assert not tool_state(page)["panMode"]
    # Panning never leaves the frame: far past its corner, the view stops at the edge.
    page.keyboard.press("Space")
    page.keyboard.down("Space")
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 2000, y + 2000, steps=4)
    page.mouse.up()
    page.keyboard.up("Space")
    half = SIZE / (2 * 1.5625)
    assert tool_state(page)["centre"] == [pytest.approx(half), pytest.approx(half)]

    page.keyboard.press("1")  # exclude, then i includes the frame again
    assert page.is_checked("#oct-exclude")
    page.keyboard.press("i")
    assert not page.is_checked("#oct-exclude")
    page.keyboard.press("x")
    submit(page)  # the next item handed out is another frame of the same pullback
    page.wait_for_selector("#oct-zoom")
    assert zoom_level(page) == pytest.approx(1.5625)
    assert tool_state(page)["centre"] == [pytest.approx(half), pytest.approx(half)]


@pytest.fixture
def strict_page(browser):
    """A page under the site's content security policy (no bypass), recording whatever the policy refuses."""
    with policed_page(browser) as page:
        yield page


def test_the_tool_zooms_pans_and_marks_labelled_frames_under_the_content_security_policy(
    strict_page, live_server, annotator, oct_project, oct_items
):
    page = strict_page  # a style attribute or an inline script would be refused, and recorded
    log_in(page, live_server, annotator.username)
    first = oct_items[1]
    open_item(page, live_server, oct_project, first)
    box = page.locator("#oct-canvas").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 3, box["y"] + box["height"] / 3)
    page.mouse.wheel(0, -200)
    page.keyboard.press("m")
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=3)
    page.mouse.up()
    page.keyboard.press("m")
    paint(page, [(40, 40), (44, 44)])
    assert area(page) > 0 and tool_state(page)["zoom"] > 1
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#workspace[data-state='ready']:not([data-item-id='{first.pk}'])")
    page.wait_for_selector("#oct-tool[data-shown-frame]")
    # The labelled frame's mark on the L-mode strip sits at that frame's place along the pullback.
    left, width = page.evaluate(
        """() => [document.querySelector(".oct-lmode-mark.oct-lmode-mask").getBoundingClientRect().left,
                 document.getElementById("oct-lmode").getBoundingClientRect()]"""
    )
    expected = width["left"] + width["width"] * (first.frame_index + 0.5) / FRAMES - 1  # margin-left: −1px
    assert left == pytest.approx(expected, abs=1)
    assert violations(page) == []
