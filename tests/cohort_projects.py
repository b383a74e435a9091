"""Fill test projects with small generated cohorts and label them from the generator's truth."""

from __future__ import annotations

from pathlib import Path

from annotation.ingest.sources import ArchiveLimits, sources_from_path
from annotation.ingest.store import sha256_of_file
from annotation.models import Item, Project
from annotation.services import import_run, label_submit
from learning.cohorts import generate_oct_cohort, generate_spect_cohort, generate_xa_cohort
from learning.masks import mask_encode


def _import(project: Project, folder: Path):
    """Import the folder; return the items it created."""
    before = set(project.items.values_list("pk", flat=True))
    report = import_run(project=project, sources=sources_from_path(folder, limits=ArchiveLimits(members=1000)))
    assert report.summary()["rejected"] == 0, report.as_json()
    return project.items.exclude(pk__in=before).select_related("instance", "spect__rest")


def vessel_cohort(project: Project, folder: Path, *, patients: int = 8, runs: int = 2, seed: int = 11) -> dict:
    """Import a small XA cohort; return {item: truth}."""
    truths = generate_xa_cohort(folder, n_patients=patients, runs_per_patient=runs, frames=(12, 16), size=48, seed=seed)
    items = _import(project, folder)
    by_hash = {sha256_of_file(t.path): t for t in truths}
    return {item: by_hash[item.instance.sha256] for item in items}


def oct_cohort(project: Project, folder: Path, *, pullbacks: int = 2, frames: int = 8, seed: int = 12) -> dict:
    """Import a small IVOCT cohort; return {item: (truth, frame mask, frame quality)}."""
    truths = generate_oct_cohort(folder, n_pullbacks=pullbacks, frames=frames, size=48, seed=seed)
    items = _import(project, folder)
    by_hash = {sha256_of_file(t.path): t for t in truths}
    out = {}
    for item in items:
        truth = by_hash[item.instance.sha256]
        out[item] = (truth, truth.masks[item.frame_index], truth.frame_quality[item.frame_index])
    return out


def spect_cohort(project: Project, folder: Path, *, patients: int = 12, seed: int = 13) -> dict:
    """Import a small PNG SPECT cohort; return {item: truth}."""
    truths = generate_spect_cohort(folder, n_patients=patients, size=48, seed=seed, fmt="png")
    items = _import(project, folder)
    by_hash = {sha256_of_file(t.rest_path): t for t in truths}
    return {item: by_hash[item.spect.rest.sha256] for item in items}


def label_vessel(item: Item, author, vessel: str):
    return label_submit(item=item, author=author, payload={"vessel": vessel}, base_version=None)


def label_oct(item: Item, author, mask, quality: str = "ok"):
    if quality != "ok":
        reason = "in_guide_catheter" if quality == "guide" else "poor_blood_clearance"
        payload = {"excluded": True, "exclusion_reason": reason}
    else:
        payload = {"mask": mask_encode(mask)}
    return label_submit(item=item, author=author, payload=payload, base_version=None)


def label_spect(item: Item, author, truth):
    payload = {"stress": list(truth.stress_scores), "rest": list(truth.rest_scores)}
    return label_submit(item=item, author=author, payload=payload, base_version=None)
