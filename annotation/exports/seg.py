"""DICOM Segmentation objects (highdicom, BINARY) of one labelled frame of a stored multi-frame image.

Each object holds one frame and references the de-identified file Lumen stored (its SOP Instance UID) and the frame
(Referenced Frame Number, 1-based), so it reads back with `highdicom.seg.segread(…).get_pixels_by_source_frame`.
Its patient and study attributes are copied by highdicom from that file, which was de-identified on ingest.

highdicom builds a segmentation of one frame of a multi-frame source itself only when the source places its frames
in the patient's coordinate system (Plane Position per frame: enhanced CT and MR). An IVOCT pullback has no such
positions (a frame is a cross-section along the catheter), and highdicom then supports a single-frame source only:
it is given a one-frame view of the stored header, and the frame reference is added to the result.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom import Dataset, dcmread
from pydicom.sr.codedict import codes
from pydicom.valuerep import PersonName

# A pseudonym ("P-…") is a one-component name on purpose; highdicom warns of such names for every object it copies
# one into.
warnings.filterwarnings("ignore", message=r'The string "P-\w+" is unlikely to represent', category=UserWarning)

MANUFACTURER = "Lumen"
MODEL_NAME = "Lumen dataset export"
SERIAL_NUMBER = "lumen"
LO_MAX = 64  # characters of one LO value
FUNCTIONAL_GROUPS = ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence")
# Type 2 attributes of the patient and study a segmentation copies from its source: a source that lacks one (a
# minimal file, or one whose de-identification removed it) gives it empty, as the source IOD allows.
COPIED_TYPE_2 = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)


@cache
def calcium_segment() -> hd.seg.SegmentDescription:
    """The one segment of an OCT calcium mask: vascular calcification in a coronary artery, drawn by hand."""
    return hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="Calcium",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.VascularCalcification,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        anatomic_regions=[codes.SCT.CoronaryArtery],
    )


@dataclass(frozen=True)
class SegSeries:
    """The series an annotator's masks of one stored file go into."""

    uid: str
    number: int
    description: str


class SegSource:
    """The header of one stored multi-frame file, ready to derive one-frame segmentations from."""

    def __init__(self, path: Path) -> None:
        self.dataset = dcmread(path, stop_before_pixels=True)
        for keyword in COPIED_TYPE_2:
            if keyword not in self.dataset:
                setattr(self.dataset, keyword, "")
        self.frames = int(self.dataset.get("NumberOfFrames") or 1)
        self.coordinates = hd.spatial.get_image_coordinate_system(self.dataset)
        self.view: Dataset | None = None
        self.placeholder_frame_of_reference = False
        self.keeps_pixel_measures = True
        if self.coordinates is None:
            self._single_frame_view()

    def _single_frame_view(self) -> None:
        """Build the one-frame view highdicom needs of a source without frame positions (see the module doc)."""
        view = Dataset()
        for element in self.dataset:
            if element.keyword not in ("NumberOfFrames", *FUNCTIONAL_GROUPS):
                view.add(copy.deepcopy(element))
        view.NumberOfFrames = 1
        shared = self.dataset.get("SharedFunctionalGroupsSequence")
        measures = shared[0].get("PixelMeasuresSequence") if shared else None
        # highdicom reads a multi-frame source's Pixel Measures, and reads back only measures with a slice thickness
        # (IVOCT's have none): the segmentation keeps the source's measures when they have one, and none otherwise.
        self.keeps_pixel_measures = (
            measures is not None
            and len(measures) == 1
            and all(keyword in measures[0] for keyword in ("PixelSpacing", "SliceThickness"))
        )
        item = Dataset()
        item.PixelMeasuresSequence = (
            measures if self.keeps_pixel_measures else hd.PixelMeasuresSequence(pixel_spacing=[1, 1], slice_thickness=1)
        )
        view.SharedFunctionalGroupsSequence = [item]
        # The Frame of Reference is mandatory in IVOCT, and highdicom holds the source to it; a stored file without
        # one gets a placeholder for the construction, removed from the result (optional in a segmentation).
        if "FrameOfReferenceUID" not in view:
            view.FrameOfReferenceUID = hd.UID()
            self.placeholder_frame_of_reference = True
        self.view = view

    @property
    def sop_instance_uid(self) -> str:
        return str(self.dataset.SOPInstanceUID)

    def segmentation(
        self,
        *,
        frame_index: int,
        mask: np.ndarray,
        series: SegSeries,
        instance_number: int,
        author: str,
        description: str,
    ) -> hd.seg.Segmentation:
        """Return the BINARY segmentation of one frame (0-based `frame_index`) of this source."""
        if not 0 <= frame_index < self.frames:
            raise ValueError(f"frame {frame_index} is outside the stored file's {self.frames} frames")
        if mask.shape != (int(self.dataset.Rows), int(self.dataset.Columns)):
            raise ValueError(f"mask shape {mask.shape} does not match the stored frame")
        positions = None
        if self.view is None:
            positions = [self._plane_position(frame_index)]
        seg = hd.seg.Segmentation(
            source_images=[self.view if self.view is not None else self.dataset],
            pixel_array=np.asarray(mask, dtype=bool)[np.newaxis],
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[calcium_segment()],
            series_instance_uid=series.uid,
            series_number=series.number,
            series_description=series.description[:LO_MAX],
            sop_instance_uid=hd.UID(),
            instance_number=instance_number,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=MODEL_NAME,
            software_versions=MODEL_NAME,
            device_serial_number=SERIAL_NUMBER,
            content_label="CALCIUM",
            content_description=description[:LO_MAX],
            content_creator_name=_person_name(author),
            plane_positions=positions,
            omit_empty_frames=False,  # one frame, kept even when the mask is empty
        )
        if self.view is not None:
            self._finish_single_frame(seg, frame_index)
        _fit_long_strings(seg)
        if not author.isascii():
            seg.SpecificCharacterSet = "ISO_IR 192"  # the annotator's name needs more than Latin-1
        return seg

    def _plane_position(self, frame_index: int) -> hd.PlanePositionSequence:
        groups = self.dataset.get("PerFrameFunctionalGroupsSequence") or []
        if frame_index < len(groups) and "PlanePositionSequence" in groups[frame_index]:
            return hd.PlanePositionSequence.from_sequence(groups[frame_index].PlanePositionSequence)
        raise ValueError("the stored file gives no plane position for this frame")

    def _finish_single_frame(self, seg: hd.seg.Segmentation, frame_index: int) -> None:
        """Make a segmentation built from the one-frame view describe the real source and frame."""
        reference = seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
        reference.ReferencedFrameNumber = frame_index + 1
        if self.placeholder_frame_of_reference:
            del seg.FrameOfReferenceUID
            if "PositionReferenceIndicator" in seg:
                del seg.PositionReferenceIndicator
        if not self.keeps_pixel_measures:
            del seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence
        # Type 2C in General Image when nothing places the frame in the patient.
        seg.PatientOrientation = self.dataset.get("PatientOrientation", "")


def _person_name(username: str) -> PersonName:
    """The annotator as a DICOM person name: the user name as the family name (a PN component holds 64); the
    trailing caret says that it is one."""
    return PersonName(f"{username[:LO_MAX]}^")


def _fit_long_strings(seg: Dataset) -> None:
    """Split a copied De-identification Method longer than LO allows into values of up to 64 characters.

    The stored files state their method in one long value; the attribute is multi-valued, so the statement is
    kept whole, one clause per value.
    """
    method = seg.get("DeidentificationMethod")
    if method is None:
        return
    values = list(method) if isinstance(method, list | tuple) or getattr(method, "is_sequence", False) else [method]
    clauses = [part.strip() for value in values for part in str(value).split(";") if part.strip()]
    fitted = [clause[i : i + LO_MAX] for clause in clauses for i in range(0, len(clause), LO_MAX)]
    if fitted != [str(v) for v in values]:
        seg.DeidentificationMethod = fitted if len(fitted) > 1 else (fitted[0] if fitted else "")
