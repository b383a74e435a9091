"""The domain tables against the facts in DOMAIN.md, and one home for them: production code never reads the
synthetic-data generator for a fact."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from learning import domain

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_PACKAGES = ("annotation", "learning", "gpu_workers", "frontend", "webapp")
GENERATOR = "learning.cohorts"
# Code that writes synthetic data on purpose: the generator itself and the command that fills a demo install.
MAY_IMPORT_GENERATOR = ("learning/cohorts/", "annotation/management/commands/demo_setup.py")

# DOMAIN.md, task 3, written out independently of the package.
DOMAIN_TERRITORIES = {
    "LAD": {1, 2, 7, 8, 13, 14, 17},
    "RCA": {3, 4, 9, 10, 15},
    "LCX": {5, 6, 11, 12, 16},
}


def test_seventeen_segments_each_in_exactly_one_territory() -> None:
    assert domain.SEGMENT_COUNT == 17
    assert domain.SEGMENTS == tuple(range(1, 18))
    assert len(domain.SEGMENT_NAMES) == 17
    assert domain.SEGMENT_NAMES[0] == "basal anterior"
    assert domain.SEGMENT_NAMES[-1] == "apex"
    memberships = [s for segments in domain.TERRITORY_SEGMENTS.values() for s in segments]
    assert sorted(memberships) == list(domain.SEGMENTS)  # every segment once, none twice
    assert {t: set(s) for t, s in domain.TERRITORY_SEGMENTS.items()} == DOMAIN_TERRITORIES
    assert domain.SEGMENT_TERRITORY == {s: t for t, segments in DOMAIN_TERRITORIES.items() for s in segments}


def test_territories_keep_the_model_output_order() -> None:
    assert domain.TERRITORIES == ("LAD", "RCA", "LCX")


def test_segment_scores_and_the_abnormal_threshold() -> None:
    assert domain.SEGMENT_SCORES == (0, 1, 2, 3, 4)
    assert domain.SEGMENT_SCORE_WORDS == ("normal", "mild", "moderate", "severe", "absent")
    assert domain.MAX_SEGMENT_SCORE == 4
    assert domain.ABNORMAL_SUMMED_SCORE == 4


@pytest.mark.parametrize(
    ("stenosis", "expected"),
    [
        ({"LM": 49, "LAD": 69, "LCX": 69, "RCA": 69}, {"LAD": False, "LCX": False, "RCA": False}),
        ({"LM": 50}, {"LAD": True, "LCX": True, "RCA": False}),  # the left main feeds LAD and LCX, not RCA
        ({"LAD": 70, "LCX": None}, {"LAD": True, "LCX": False, "RCA": False}),
        ({"RCA": 70}, {"LAD": False, "LCX": False, "RCA": True}),
        ({}, {"LAD": False, "LCX": False, "RCA": False}),
    ],
)
def test_ica_obstructive_is_left_main_50_or_vessel_70(stenosis, expected) -> None:
    assert domain.ica_obstructive(stenosis) == expected


def test_vessel_classes_and_label_choices() -> None:
    assert domain.VESSEL_CLASSES == ("LCA", "RCA", "neither")
    assert domain.VESSEL_CHOICES == ("LCA", "RCA", "neither", "unusable")


def test_sixteen_segment_lesion_map_splits_rca_and_lca() -> None:
    assert sorted(domain.CORONARY_SEGMENT_NAMES) == list(range(1, 17))
    assert {s for s, artery in domain.CORONARY_SEGMENT_ARTERY.items() if artery == "RCA"} == {1, 2, 3, 4, 16}
    assert {s for s, artery in domain.CORONARY_SEGMENT_ARTERY.items() if artery == "LCA"} == set(range(5, 16))
    names = domain.CORONARY_SEGMENT_NAMES
    assert (names[4], names[16], names[5]) == ("PDA", "PLA", "LM")
    assert [names[s] for s in (6, 7, 8)] == ["proximal LAD", "mid LAD", "distal LAD"]
    assert [names[s] for s in (9, 10, 12, 14)] == ["D1", "D2", "M1", "M2"]


def test_production_and_generator_share_the_domain_tables() -> None:
    from annotation import label_schemas
    from learning import cohorts, metrics, spect_scoring
    from learning.models import spect as spect_model
    from learning.tasks import vessel

    assert label_schemas.VESSEL_CHOICES is domain.VESSEL_CHOICES
    assert label_schemas.TERRITORIES is domain.TERRITORIES
    assert vessel.CLASSES is domain.VESSEL_CLASSES
    assert spect_model.TERRITORIES is domain.TERRITORIES
    assert metrics.TERRITORIES is domain.TERRITORIES
    assert spect_scoring.TERRITORY_SEGMENTS is domain.TERRITORY_SEGMENTS
    assert spect_scoring.ica_obstructive is domain.ica_obstructive
    assert cohorts.TERRITORY_SEGMENTS is domain.TERRITORY_SEGMENTS
    assert cohorts.RUN_VESSELS is domain.VESSEL_CLASSES


# --- production code does not import the generator -------------------------------------------------------------


def imported_modules(path: Path, package: list[str]) -> set[str]:
    """Return the absolute module names a file imports; `from x import y` gives both x and x.y."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def generator_imports(root: Path) -> list[str]:
    """Return "path: module" for each import of the cohort generator by production code under root."""
    found = []
    for top in PRODUCTION_PACKAGES:
        for path in sorted((root / top).rglob("*.py")):
            relative = path.relative_to(root)
            if relative.as_posix().startswith(MAY_IMPORT_GENERATOR):
                continue
            for name in sorted(imported_modules(path, list(relative.parts[:-1]))):
                if name == GENERATOR or name.startswith(f"{GENERATOR}."):
                    found.append(f"{relative.as_posix()}: {name}")
    return found


def test_production_code_does_not_import_the_cohort_generator() -> None:
    assert generator_imports(ROOT) == []


def test_the_import_check_finds_every_form_of_import(tmp_path) -> None:
    files = {
        "annotation/quality/a.py": "from learning.cohorts.territories import TERRITORIES\n",
        "learning/b.py": "from .cohorts import spect\n",
        "learning/tasks/c.py": "from ..cohorts.spect import ica_obstructive\n",
        "gpu_workers/d.py": "def f():\n    import learning.cohorts\n",
        "frontend/e.py": "from learning import cohorts, domain\n",
        "webapp/ok.py": "import learning.cohortsmith\nfrom learning.domain import TERRITORIES\n",
        "learning/cohorts/spect.py": "from learning.cohorts.territories import segment_of\n",
        "annotation/management/commands/demo_setup.py": "from learning.cohorts import generate_xa_cohort\n",
    }
    for relative, source in files.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(source)
    assert generator_imports(tmp_path) == [
        "annotation/quality/a.py: learning.cohorts.territories",
        "annotation/quality/a.py: learning.cohorts.territories.TERRITORIES",
        "learning/b.py: learning.cohorts",
        "learning/b.py: learning.cohorts.spect",
        "learning/tasks/c.py: learning.cohorts.spect",
        "learning/tasks/c.py: learning.cohorts.spect.ica_obstructive",
        "gpu_workers/d.py: learning.cohorts",
        "frontend/e.py: learning.cohorts",
    ]
