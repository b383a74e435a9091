"""Burned-in text: what the file says of itself (BurnedInAnnotation) and, as an opt-in check, text in its pixels.

Text burned into angiography and OCT frames (names, dates, hospital) is drawn near full white over the image.
The check keeps only those pixels, enlarges them and asks Tesseract (Debian `tesseract-ocr`, through
`pytesseract`) for words; it records where words were found, never what they say.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image
from pydicom import Dataset
from pydicom.multival import MultiValue

from annotation.ingest.deid import add_method_code

TEXT_LEVEL = 235  # burned-in text is drawn at (nearly) full white
MIN_CONFIDENCE = 30
SCALE = 2  # Tesseract reads text of about 20 px; overlays on 256-512 px frames are smaller
MAX_REGIONS = 200
CLEAN_PIXEL_DATA = ("113101", "Clean Pixel Data Option")
BURNED_IN_CLAUSE = "burned-in text masked"


class OcrUnavailable(RuntimeError):
    """Tesseract is not installed where the check runs."""


def burned_in_attribute(value: object) -> str:
    """The file's BurnedInAnnotation as "YES" / "NO", or "" when absent or not one of those."""
    text = str(value or "").strip().upper()
    return text if text in ("YES", "NO") else ""


def ocr_available() -> bool:
    import pytesseract

    try:
        pytesseract.get_tesseract_version()
    except (pytesseract.TesseractNotFoundError, OSError):
        return False
    return True


def text_regions(frames: Iterable[np.ndarray]) -> list[list[int]]:
    """Return the boxes [x, y, width, height] (in frame pixels) where words were found in any of `frames`."""
    import pytesseract

    boxes: set[tuple[int, int, int, int]] = set()
    for frame in frames:
        gray = frame if frame.ndim == 2 else frame[..., :3].mean(axis=-1)
        ink = np.where(gray >= TEXT_LEVEL, 0, 255).astype(np.uint8)  # black text on white, as Tesseract likes
        if not (ink == 0).any():
            continue
        height, width = ink.shape
        page = Image.fromarray(ink).resize((width * SCALE, height * SCALE), Image.Resampling.BILINEAR)
        try:
            words = pytesseract.image_to_data(page, output_type=pytesseract.Output.DICT, config="--psm 11")
        except (pytesseract.TesseractNotFoundError, OSError) as exc:
            raise OcrUnavailable("tesseract-ocr is not installed on this server") from exc
        for text, confidence, *box in zip(
            words["text"], words["conf"], words["left"], words["top"], words["width"], words["height"], strict=True
        ):
            if float(confidence) >= MIN_CONFIDENCE and sum(ch.isalnum() for ch in text) >= 2:
                boxes.add(tuple(v // SCALE for v in box))
    return [list(box) for box in sorted(boxes)]


def check_regions(regions: object, rows: int, columns: int) -> list[list[int]]:
    """Validate boxes [x, y, width, height] against a frame of rows × columns; ValueError names the bad one."""
    if not isinstance(regions, list) or not regions:
        raise ValueError("give at least one region [x, y, width, height]")
    if len(regions) > MAX_REGIONS:
        raise ValueError(f"at most {MAX_REGIONS} regions")
    checked = []
    for number, box in enumerate(regions, start=1):
        if not (isinstance(box, list) and len(box) == 4 and all(type(v) is int for v in box)):
            raise ValueError(f"region {number} is not four whole numbers [x, y, width, height]")
        x, y, width, height = box
        if x < 0 or y < 0 or width < 1 or height < 1 or x + width > columns or y + height > rows:
            raise ValueError(f"region {number} {box} is not inside the {columns} × {rows} frame")
        checked.append([x, y, width, height])
    return checked


def mask_pixels(ds: Dataset, regions: list[list[int]]) -> None:
    """Paint `regions` black in every frame of `ds`, store its pixels uncompressed, and record the option used.

    Colour data decoded from YBR is stored as RGB; the SOP Instance UID stays (the same de-identified instance).
    """
    pixels = ds.pixel_array.copy()
    colour = int(ds.get("SamplesPerPixel", 1) or 1) > 1
    photometric = str(ds.PhotometricInterpretation)
    bits = int(ds.BitsStored)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    black = high if photometric == "MONOCHROME1" else low
    for x, y, width, height in regions:
        if colour:
            pixels[..., y : y + height, x : x + width, :] = 0
        else:
            pixels[..., y : y + height, x : x + width] = black
    if colour and photometric.startswith("YBR"):
        photometric = "RGB"  # pydicom decodes YBR to RGB
    ds.set_pixel_data(pixels, photometric_interpretation=photometric, bits_stored=bits, generate_instance_uid=False)
    ds.BurnedInAnnotation = "NO"
    stated = ds.get("DeidentificationMethod")
    method = [str(v) for v in stated] if isinstance(stated, MultiValue) else [str(stated)] if stated else []
    if BURNED_IN_CLAUSE not in method:  # one more value of the multi-valued attribute (LO: 64 characters each)
        ds.DeidentificationMethod = [*method, BURNED_IN_CLAUSE]
    add_method_code(ds, *CLEAN_PIXEL_DATA)
