"""SPECT polar maps as PNG files listed in a CSV manifest: one row (rest + stress + clinical features) per patient."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath

import numpy as np
from django.db import IntegrityError, transaction
from PIL import Image, UnidentifiedImageError

from annotation.ingest import render
from annotation.ingest.deid import PatientKey
from annotation.ingest.dicom_file import Clinical
from annotation.ingest.pipeline import pair_polar_map
from annotation.ingest.results import FileResult, Outcome, Reason, Rejection
from annotation.ingest.sources import SourceFile
from annotation.ingest.store import media_path, patient_for, sha256_of, undo_files_on_error
from annotation.models import PolarMap, Project

COLUMNS = ("patient", "rest_file", "stress_file", "age", "sex", "weight", "height")
MANIFEST_ISSUER = "lumen-manifest"


@dataclass(frozen=True)
class ManifestRow:
    number: int
    patient: str
    rest_file: str
    stress_file: str
    clinical: Clinical


def is_manifest(name: str) -> bool:
    return name.lower().endswith(".csv")


def is_png(name: str) -> bool:
    return name.lower().endswith(".png")


def parse_manifest(data: bytes) -> list[ManifestRow | Rejection]:
    """Parse the manifest; a missing column rejects it whole, a bad row rejects only that row."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Rejection(Reason.BAD_MANIFEST, "manifest is not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip().lower() for name in reader.fieldnames or []]
    missing = [column for column in COLUMNS if column not in header]
    if missing:
        raise Rejection(
            Reason.BAD_MANIFEST, f"manifest lacks column(s) {', '.join(missing)}; expected header {','.join(COLUMNS)}"
        )
    rows: list[ManifestRow | Rejection] = []
    for number, raw in enumerate(reader, start=2):
        values = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
        try:
            rows.append(_row(number, values))
        except Rejection as rejection:
            rows.append(rejection)
    return rows


def _row(number: int, values: dict[str, str]) -> ManifestRow:
    where = f"row {number}"
    for column in ("patient", "rest_file", "stress_file"):
        if not values.get(column):
            raise Rejection(Reason.BAD_MANIFEST, f"{where}: {column} is empty")
    age = _number(where, "age", values["age"], int, 0, 130)
    weight = _number(where, "weight", values["weight"], float, 1, 500)
    height = _number(where, "height", values["height"], float, 30, 250)
    sex = values["sex"].upper()[:1]
    if values["sex"] and sex not in ("F", "M", "O"):
        raise Rejection(Reason.BAD_MANIFEST, f"{where}: sex {values['sex']!r} must be F, M or O")
    return ManifestRow(
        number,
        values["patient"],
        values["rest_file"],
        values["stress_file"],
        Clinical(age=age, sex=sex, weight_kg=weight, height_cm=height),
    )


def _number(where: str, column: str, text: str, kind: type, low: float, high: float):
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise Rejection(Reason.BAD_MANIFEST, f"{where}: {column} {text!r} is not {noun}") from None
    if not low <= value <= high:
        raise Rejection(Reason.BAD_MANIFEST, f"{where}: {column} {value} is outside {low}–{high}")
    return value


def _polar_pixels(source: SourceFile, data: bytes, column: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "PNG":
                raise Rejection(Reason.BAD_MANIFEST, f"{column} {source.name!r} is a {image.format}, not a PNG")
            array = np.asarray(image.convert("L" if image.mode in ("L", "I", "I;16", "1", "P", "LA") else "RGB"))
    except (UnidentifiedImageError, OSError):
        raise Rejection(Reason.BAD_MANIFEST, f"{column} {source.name!r} is not a readable PNG image") from None
    return array


def import_manifest(
    project: Project, manifest: SourceFile, pngs: dict[str, SourceFile], used: set[str]
) -> list[FileResult]:
    """Import every row of a manifest; PNG paths are relative to the manifest. Marks used PNG names."""
    try:
        rows = parse_manifest(manifest.read())
    except Rejection as rejection:
        return [FileResult(manifest.name, Outcome.REJECTED, str(rejection.reason), rejection.message)]
    base = PurePosixPath(manifest.name).parent
    results = []
    for row in rows:
        if isinstance(row, Rejection):
            results.append(FileResult(manifest.name, Outcome.REJECTED, str(row.reason), row.message))
            continue
        name = f"{manifest.name} row {row.number}"
        try:
            sources = {}
            for column, relative in (("rest_file", row.rest_file), ("stress_file", row.stress_file)):
                key = str(base / relative) if str(base) != "." else relative
                if key not in pngs:
                    raise Rejection(
                        Reason.BAD_MANIFEST, f"row {row.number}: {column} {relative!r} is not in the upload"
                    )
                sources[column] = pngs[key]
                used.add(key)
            results.append(_store_row(project, name, row, sources["rest_file"], sources["stress_file"]))
        except Rejection as rejection:
            results.append(FileResult(name, Outcome.REJECTED, str(rejection.reason), rejection.message))
    return results


def _store_row(project: Project, name: str, row: ManifestRow, rest: SourceFile, stress: SourceFile) -> FileResult:
    raw = {"rest": rest.read(), "stress": stress.read()}
    images = {
        "rest": _polar_pixels(rest, raw["rest"], "rest_file"),
        "stress": _polar_pixels(stress, raw["stress"], "stress_file"),
    }
    hashes = {phase: sha256_of(data) for phase, data in raw.items()}
    existing = PolarMap.objects.filter(project=project, sha256=hashes["rest"], phase="rest").first()
    if existing is not None:
        return FileResult(name, Outcome.DUPLICATE, "duplicate", "this rest map was already imported")
    key = PatientKey(patient_id=row.patient, name="", birth_date="", issuer=MANIFEST_ISSUER)
    try:
        with undo_files_on_error(project) as paths:
            for phase, image in images.items():
                path = media_path(paths.polar(phase))
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(render.encode_image(render.normalise_polar_map(image), "png", 100))
            with transaction.atomic():
                patient = patient_for(key, lock=True)
                maps = {}
                for phase, image in images.items():
                    maps[phase] = PolarMap.objects.create(
                        project=project,
                        patient=patient,
                        study=None,
                        phase=phase,
                        instance=None,
                        image_path=paths.polar(phase),
                        rows=image.shape[0],
                        columns=image.shape[1],
                        sha256=hashes[phase],
                        clinical=asdict(row.clinical),
                    )
                created = pair_polar_map(project, patient, None, maps["stress"])
    except IntegrityError:
        return FileResult(name, Outcome.DUPLICATE, "duplicate", "these polar maps were already imported")
    return FileResult(name, Outcome.STORED, "", f"{created} item(s) created", items_created=created)
