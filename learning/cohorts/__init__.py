"""Synthetic cohorts with known ground truth: XA cine runs, IVOCT pullbacks, SPECT polar maps.

Pure numpy + pydicom + Pillow (no Django, no torch) and deterministic from a seed, so demo
data, tests, benchmarks and training can share it. ``python -m learning.cohorts --help``
writes a cohort and its truth JSON from the command line.
"""

from learning.domain import SEGMENT_TERRITORY, TERRITORY_SEGMENTS

from .dicom_common import FakePatient, FakeStudy, fake_patient, fake_study
from .ivoct import (
    IVOCT_SOP_CLASS,
    OctPullbackTruth,
    OctRender,
    generate_oct_cohort,
    render_oct_pullback,
    write_oct_pullback,
)
from .spect import (
    MANIFEST_HEADER,
    READER_DISAGREEMENT,
    SC_SOP_CLASS,
    SPECT_DIFFICULTIES,
    SpectDifficulty,
    SpectPatientTruth,
    generate_spect_cohort,
    ica_obstructive,
    spect_difficulty,
)
from .territories import segment_map, territory_abnormal
from .truth import read_truth_json, write_truth_json
from .xa import (
    NEITHER,
    NEITHER_KINDS,
    RUN_VESSELS,
    XA_SOP_CLASS,
    XaRender,
    XaRunTruth,
    check_xa_knobs,
    generate_xa_cohort,
    render_xa_run,
    write_xa_run,
    write_xa_run_rle,
)
from .xa_views import VIEW_MIXES, XaView, sample_view

__all__ = [
    "IVOCT_SOP_CLASS",
    "MANIFEST_HEADER",
    "NEITHER",
    "NEITHER_KINDS",
    "READER_DISAGREEMENT",
    "RUN_VESSELS",
    "SC_SOP_CLASS",
    "SEGMENT_TERRITORY",
    "SPECT_DIFFICULTIES",
    "TERRITORY_SEGMENTS",
    "VIEW_MIXES",
    "XA_SOP_CLASS",
    "FakePatient",
    "FakeStudy",
    "OctPullbackTruth",
    "OctRender",
    "SpectDifficulty",
    "SpectPatientTruth",
    "XaRender",
    "XaRunTruth",
    "XaView",
    "check_xa_knobs",
    "fake_patient",
    "fake_study",
    "generate_oct_cohort",
    "generate_spect_cohort",
    "generate_xa_cohort",
    "ica_obstructive",
    "read_truth_json",
    "render_oct_pullback",
    "render_xa_run",
    "sample_view",
    "segment_map",
    "spect_difficulty",
    "territory_abnormal",
    "write_oct_pullback",
    "write_truth_json",
    "write_xa_run",
    "write_xa_run_rle",
]
