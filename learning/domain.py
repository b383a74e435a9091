"""Cardiology facts the platform is built on: vessel classes, the AHA 17-segment model and its coronary
territories, the abnormal-territory and invasive-angiography thresholds, and the 16-segment coronary map.

One table per fact, imported by production code and by the synthetic cohort generator alike. Plain Python:
no numpy, no Django.
"""

from __future__ import annotations

from collections.abc import Mapping

# --- Task 1: which coronary artery a cine run shows ------------------------------------------------------------

CORONARY_ARTERIES = ("LCA", "RCA")
NEITHER = "neither"  # a run that shows neither coronary: aortogram, ventriculogram, a test puff with no filling
UNUSABLE = "unusable"  # an annotator's verdict, never a class a model predicts
# What a run can show, in the order vessel models index their outputs.
VESSEL_CLASSES = (*CORONARY_ARTERIES, NEITHER)
# What an annotator can answer.
VESSEL_CHOICES = (*VESSEL_CLASSES, UNUSABLE)

# Lesion reports name sites of the 16-segment coronary classification, not videos. The PDA (4) and the PLA (16)
# come from the RCA in about 80 % of patients (right dominance), so the map puts them there, as the seed paper does.
CORONARY_SEGMENT_NAMES: dict[int, str] = {
    1: "proximal RCA",
    2: "mid RCA",
    3: "distal RCA",
    4: "PDA",
    5: "LM",
    6: "proximal LAD",
    7: "mid LAD",
    8: "distal LAD",
    9: "D1",
    10: "D2",
    11: "proximal LCX",
    12: "M1",
    13: "mid LCX",
    14: "M2",
    15: "distal LCX",
    16: "PLA",
}
CORONARY_SEGMENT_ARTERY: dict[int, str] = {
    segment: "RCA" if segment in (1, 2, 3, 4, 16) else "LCA" for segment in CORONARY_SEGMENT_NAMES
}
# The two segments whose supplying artery depends on dominance (PDA and PLA).
DOMINANCE_SEGMENTS = (4, 16)
# Which coronary artery (as a cine run shows it) supplies the PDA / PLA under each recorded dominance; an empty
# dominance (not recorded) supplies nothing, so a lesion there cannot be linked and its exam is ambiguous.
DOMINANCE_ARTERIES: dict[str, tuple[str, ...]] = {
    "right": ("RCA",),
    "left": ("LCA",),
    "codominant": ("LCA", "RCA"),
    "": (),
}
# The vessel a stenosis is reported against (ECG <-> angiography pairs, seed 004): left main, LAD (with its
# diagonals), LCX (with its marginals) and RCA. PDA and PLA belong to the dominant artery's vessel.
STENOSIS_VESSELS = ("LM", "LAD", "LCX", "RCA")
CORONARY_SEGMENT_VESSEL: dict[int, str] = {
    **dict.fromkeys((1, 2, 3, 4, 16), "RCA"),
    5: "LM",
    **dict.fromkeys((6, 7, 8, 9, 10), "LAD"),
    **dict.fromkeys((11, 12, 13, 14, 15), "LCX"),
}
DOMINANCE_VESSELS: dict[str, tuple[str, ...]] = {
    "right": ("RCA",),
    "left": ("LCX",),
    "codominant": ("LCX", "RCA"),
    "": (),
}


def segment_arteries(segment: int, dominance: str) -> tuple[str, ...]:
    """Return the coronary arteries (LCA / RCA) whose runs show `segment` (1–16) under `dominance`.

    Empty for a PDA / PLA lesion when the dominance is not recorded: the lesion cannot be linked.
    """
    if segment not in CORONARY_SEGMENT_NAMES:
        raise ValueError(f"coronary segment must be 1–16, got {segment}")
    if dominance not in DOMINANCE_ARTERIES:
        raise ValueError(f"unknown dominance {dominance!r}: expected one of right, left, codominant or empty")
    if segment in DOMINANCE_SEGMENTS:
        return DOMINANCE_ARTERIES[dominance]
    return (CORONARY_SEGMENT_ARTERY[segment],)


def segment_vessels(segment: int, dominance: str) -> tuple[str, ...]:
    """Return the vessels (``STENOSIS_VESSELS``) a stenosis in `segment` counts against under `dominance`."""
    if segment not in CORONARY_SEGMENT_NAMES:
        raise ValueError(f"coronary segment must be 1–16, got {segment}")
    if dominance not in DOMINANCE_VESSELS:
        raise ValueError(f"unknown dominance {dominance!r}: expected one of right, left, codominant or empty")
    if segment in DOMINANCE_SEGMENTS:
        return DOMINANCE_VESSELS[dominance]
    return (CORONARY_SEGMENT_VESSEL[segment],)


# --- Task 3: SPECT myocardial perfusion, AHA 17-segment model ---------------------------------------------------

SEGMENT_COUNT = 17
SEGMENTS = tuple(range(1, SEGMENT_COUNT + 1))
SEGMENT_NAMES = (
    "basal anterior",
    "basal anteroseptal",
    "basal inferoseptal",
    "basal inferior",
    "basal inferolateral",
    "basal anterolateral",
    "mid anterior",
    "mid anteroseptal",
    "mid inferoseptal",
    "mid inferior",
    "mid inferolateral",
    "mid anterolateral",
    "apical anterior",
    "apical septal",
    "apical inferior",
    "apical lateral",
    "apex",
)
# Each segment is scored 0 normal, 1 mild, 2 moderate, 3 severe, 4 absent.
SEGMENT_SCORE_WORDS = ("normal", "mild", "moderate", "severe", "absent")
SEGMENT_SCORES = tuple(range(len(SEGMENT_SCORE_WORDS)))
MAX_SEGMENT_SCORE = SEGMENT_SCORES[-1]

# Coronary territories in the order territory models index their outputs.
TERRITORY_SEGMENTS: dict[str, tuple[int, ...]] = {
    "LAD": (1, 2, 7, 8, 13, 14, 17),
    "RCA": (3, 4, 9, 10, 15),
    "LCX": (5, 6, 11, 12, 16),
}
TERRITORIES = tuple(TERRITORY_SEGMENTS)
SEGMENT_TERRITORY: dict[int, str] = {seg: territory for territory, segs in TERRITORY_SEGMENTS.items() for seg in segs}
# A territory whose summed stress score reaches this is abnormal; a patient is abnormal if any territory is.
ABNORMAL_SUMMED_SCORE = 4

# Invasive coronary angiography (ICA) reference: percent narrowing per vessel.
ICA_VESSELS = ("LM", "LAD", "LCX", "RCA")
LEFT_MAIN_OBSTRUCTIVE_PERCENT = 50  # the left main feeds the LAD and the LCX
VESSEL_OBSTRUCTIVE_PERCENT = 70


def ica_obstructive(ica: Mapping[str, float | None]) -> dict[str, bool]:
    """Return per-territory obstructive CAD by ICA: LM >= 50% (LAD, LCX) or vessel >= 70%; missing counts as 0."""
    lm = (ica.get("LM") or 0.0) >= LEFT_MAIN_OBSTRUCTIVE_PERCENT
    return {
        "LAD": (ica.get("LAD") or 0.0) >= VESSEL_OBSTRUCTIVE_PERCENT or lm,
        "LCX": (ica.get("LCX") or 0.0) >= VESSEL_OBSTRUCTIVE_PERCENT or lm,
        "RCA": (ica.get("RCA") or 0.0) >= VESSEL_OBSTRUCTIVE_PERCENT,
    }
