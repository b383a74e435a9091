"""What a task contributes to a dataset export: its columns in the label tables and its own files.

A task names its exporter (`LabelTask.exporter()`); the export job (`annotation.services.exports`) writes the
tables every task shares and asks the exporter for the rest. Exporters read stored, de-identified data only:
pseudonyms, remapped UIDs, the de-identified DICOM files; never `PatientIdentity`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from annotation.models import Label

# A value of one CSV cell (None is written as an empty cell).
Cell = str | int | float | bool | None


@dataclass(frozen=True)
class ExportFile:
    """One file of the archive made by a task: its path inside the archive, its bytes, and its label."""

    path: str
    data: bytes
    # The (current) label the file was made from: the manifest names it, and the job's progress follows it.
    label_id: int | None = None
    # PNG and other already compressed formats are stored as they are.
    compress: bool = True


class TaskExporter(ABC):
    """How one task's labels leave Lumen, besides the tables every task shares."""

    # Relations of Label joined when the current labels are handed to `files`.
    relations: ClassVar[tuple[str, ...]] = ()
    # The task's columns in labels.csv and label_history.csv, after the shared ones, in this order.
    columns: ClassVar[tuple[str, ...]]
    # Each task file (a path or a pattern inside the archive) and what it holds, for the manifest.
    describes: ClassVar[dict[str, str]] = {}

    @abstractmethod
    def label_row(self, label: Label) -> dict[str, Cell]:
        """Return the label's payload flattened into `columns` (any label version, current or superseded)."""

    @abstractmethod
    def files(self, labels: Iterable[Label]) -> Iterator[ExportFile]:
        """Yield the task's own files made from the current labels (item, instance, patient, author joined)."""


class PayloadExporter(TaskExporter):
    """For a task with nothing of its own to export: the payload as JSON in one column, no extra files."""

    columns = ("payload",)

    def label_row(self, label: Label) -> dict[str, Cell]:
        return {"payload": json.dumps(label.payload, sort_keys=True, separators=(",", ":"))}

    def files(self, labels: Iterable[Label]) -> Iterator[ExportFile]:
        return iter(())


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def author_file_name(username: str, author_id: int) -> str:
    """Return a name for an author that is safe in a file name and unique among authors.

    A user name that is already safe stays as it is; any other (Django allows `@` and `+`, and letters of every
    script) has its other characters replaced and the user's id appended, so two such names never meet.
    """
    safe = _UNSAFE.sub("_", username)
    return safe if safe == username and safe not in {"", ".", ".."} else f"{safe}-{author_id}"


# The columns that say which label a row of a task file is: the same in every task file.
LABEL_KEY = ("label_id", "item_id", "patient", "split", "author", "version")


def label_key(label: Label) -> dict[str, Cell]:
    """Return the LABEL_KEY columns of a label (item, patient and author joined)."""
    item = label.item
    return {
        "label_id": label.pk,
        "item_id": item.pk,
        "patient": item.patient.pseudonym,
        "split": split_name(item.split),
        "author": label.author.username,
        "version": label.version,
    }


def split_name(split: str) -> str:
    """Return an item's split as exports write it: train, validation, test, or unassigned (stored as "")."""
    return split or "unassigned"


def csv_cell(value: Cell) -> str:
    """Write a cell the same way in every CSV of an export: booleans as true/false, None as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def csv_bytes(columns: tuple[str, ...], rows: Iterable[dict[str, Cell]]) -> bytes:
    """Return a small CSV file (UTF-8, header first) of rows with exactly these columns."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_cell(row[column]) for column in columns])
    return out.getvalue().encode()
