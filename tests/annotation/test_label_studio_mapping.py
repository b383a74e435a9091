"""Every task that can be labelled in Label Studio maps its labels there and back exactly (no server needed): its
config is one Label Studio accepts, its result regions fit that config (label-studio-sdk's own validation), and
the payload read back is the label stored. The refusals name the control at fault."""

from __future__ import annotations

import numpy as np
import pytest
from label_studio_sdk.converter.brush import decode_rle, mask2rle
from label_studio_sdk.label_interface import LabelInterface

from annotation.label_schemas import LabelPayloadError
from annotation.models import Instance, Item
from annotation.tasks import label_task
from annotation.tasks.label_studio import Regions
from learning.masks import mask_decode, mask_encode
from tests.image_task import ImageClass

ROWS, COLUMNS = 37, 53  # odd, and not square: rows and columns cannot be swapped unnoticed


def _oct_item() -> Item:
    return Item(pk=1, instance=Instance(rows=ROWS, columns=COLUMNS, sop_instance_uid="1.2.3"), frame_index=4)


def _edge_mask() -> np.ndarray:
    mask = np.zeros((ROWS, COLUMNS), dtype=bool)
    mask[0, :5] = True  # the first row's start
    mask[:, -1] = True  # the whole last column
    mask[-1, 0] = True  # the bottom-left pixel alone
    mask[10:20, 7:31] = np.random.default_rng(3).random((10, 24)) > 0.5
    return mask


SPECT_SCORES = {"stress": [(i * 7) % 5 for i in range(17)], "rest": [(i * 3) % 5 for i in range(17)]}
CASES = [
    ("vessel_type", Item(pk=1), {"vessel": "LCA"}),
    ("vessel_type", Item(pk=1), {"vessel": "unusable", "unusable_reason": "no contrast in any frame"}),
    ("oct_calcium", _oct_item(), {"excluded": False, "mask": mask_encode(_edge_mask())}),
    ("oct_calcium", _oct_item(), {"excluded": False, "mask": mask_encode(np.zeros((ROWS, COLUMNS), dtype=bool))}),
    ("oct_calcium", _oct_item(), {"excluded": True, "exclusion_reason": "poor_blood_clearance"}),
    ("spect_territory", Item(pk=1), {**SPECT_SCORES, "flag_overrides": {}}),
    (
        "spect_territory",
        Item(pk=1),
        {**SPECT_SCORES, "flag_overrides": {"RCA": {"abnormal": False, "reason": "attenuation artefact"}}},
    ),
    ("image_class", Item(pk=1), {"class": "bright"}),
]


def _task(name: str):
    return ImageClass() if name == "image_class" else label_task(name)


@pytest.mark.parametrize(("name", "item", "payload"), CASES, ids=lambda x: x if isinstance(x, str) else "")
def test_a_label_goes_to_label_studio_and_comes_back_the_same(name, item, payload):
    task = _task(name)
    config = task.label_studio_config()
    interface = LabelInterface(config)
    interface.validate()  # raises on a config Label Studio would refuse
    result = task.label_studio_result(payload, item)
    assert interface.validate_prediction({"result": result}, return_errors=True) == []
    assert task.label_studio_payload(Regions(result), item) == payload


def test_an_oct_mask_travels_as_label_studio_brush_rle_pixel_for_pixel():
    task, item, mask = label_task("oct_calcium"), _oct_item(), _edge_mask()
    (region,) = task.label_studio_result({"excluded": False, "mask": mask_encode(mask)}, item)
    assert (region["original_height"], region["original_width"]) == (ROWS, COLUMNS)
    drawn = decode_rle(region["value"]["rle"]).reshape(ROWS, COLUMNS, 4)[:, :, 3] > 0  # as Label Studio reads it
    assert np.array_equal(drawn, mask)


def test_oct_strokes_are_united_and_their_size_checked():
    task, item = label_task("oct_calcium"), _oct_item()
    left, right = np.zeros((ROWS, COLUMNS), dtype=np.uint8), np.zeros((ROWS, COLUMNS), dtype=np.uint8)
    left[:, :3], right[5:9, 40:] = 255, 255

    def stroke(pixels, rows=ROWS, columns=COLUMNS):
        value = {"format": "rle", "rle": mask2rle(pixels), "brushlabels": ["calcium"]}
        return {"from_name": "calcium", "to_name": "image", "type": "brushlabels", "value": value} | {
            "original_height": rows,
            "original_width": columns,
        }

    payload = task.label_studio_payload(Regions([stroke(left), stroke(right)]), item)
    assert np.array_equal(mask_decode(payload["mask"]), (left > 0) | (right > 0))
    with pytest.raises(LabelPayloadError) as wrong:
        task.label_studio_payload(Regions([stroke(left.T.copy(), COLUMNS, ROWS)]), item)
    assert wrong.value.field == "calcium" and "53x37" in wrong.value.message
    excluded = {"from_name": "excluded", "to_name": "image", "type": "choices", "value": {"choices": ["artifact"]}}
    with pytest.raises(LabelPayloadError, match="excluded frame carries no calcium mask"):
        task.label_studio_payload(Regions([stroke(left), excluded]), item)


def _spect_result(flag: str | None = None, reason: str | None = None) -> list[dict]:
    task = label_task("spect_territory")
    result = task.label_studio_result({**SPECT_SCORES, "flag_overrides": {}}, Item(pk=1))
    if flag is not None:
        result.append({"from_name": "flag_LAD", "to_name": "stress", "type": "choices", "value": {"choices": [flag]}})
    if reason is not None:
        result.append(
            {"from_name": "flag_LAD_reason", "to_name": "stress", "type": "textarea", "value": {"text": [reason]}}
        )
    return result


def test_a_spect_flag_without_a_reason_must_agree_with_the_scores():
    task = label_task("spect_territory")
    # The stress scores of the LAD segments (1, 2, 7, 8, 13, 14, 17) sum to 0+2+2+4+4+1+2 = 15: abnormal.
    agreeing = task.label_studio_payload(Regions(_spect_result("abnormal")), Item(pk=1))
    assert agreeing["flag_overrides"] == {}
    with pytest.raises(LabelPayloadError) as differing:
        task.label_studio_payload(Regions(_spect_result("normal")), Item(pk=1))
    assert differing.value.field == "flag_LAD_reason" and "summed stress score 15" in differing.value.message
    with pytest.raises(LabelPayloadError, match="a reason without a flag") as unflagged:
        task.label_studio_payload(Regions(_spect_result(reason="looks fine")), Item(pk=1))
    assert unflagged.value.field == "flag_LAD"


def test_a_missing_spect_score_is_named():
    task = label_task("spect_territory")
    result = [r for r in _spect_result() if r["from_name"] != "rest_9"]
    with pytest.raises(LabelPayloadError, match=r"no rest score for segment 9 \(mid inferoseptal\)") as missing:
        task.label_studio_payload(Regions(result), Item(pk=1))
    assert missing.value.field == "rest_9"


def test_the_champions_prediction_prefills_what_label_studio_can_show():
    vessel, oct_task, spect = label_task("vessel_type"), label_task("oct_calcium"), label_task("spect_territory")
    assert vessel.label_studio_prediction({"vessel": "RCA"}, Item(pk=1))[0]["value"] == {"choices": ["RCA"]}
    (region,) = oct_task.label_studio_prediction({"mask": mask_encode(_edge_mask())}, _oct_item())
    assert np.array_equal(decode_rle(region["value"]["rle"]).reshape(ROWS, COLUMNS, 4)[:, :, 3] > 0, _edge_mask())
    assert oct_task.label_studio_prediction({"mask": mask_encode(np.ones((4, 4), dtype=bool))}, _oct_item()) == []
    flags = spect.label_studio_prediction({"abnormal": {"LAD": True, "RCA": False, "LCX": False}}, Item(pk=1))
    assert [(r["from_name"], r["value"]["choices"]) for r in flags] == [
        ("flag_LAD", ["abnormal"]),
        ("flag_RCA", ["normal"]),
        ("flag_LCX", ["normal"]),
    ]
