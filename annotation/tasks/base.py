"""What the platform asks of a labelling task: one class per task, registered by dotted path in LUMEN_TASKS.

A task declares which files it accepts and how they become items, its label schema, what its workspace and
pages show, its training targets, its agreement statistic, its cold-start features, its learning task and its
browser tool. Code outside `annotation.tasks` asks the registry (`label_task(project.task_type)`) and never
compares a task type with a string.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from django.db.models import QuerySet

if TYPE_CHECKING:
    from pydicom import Dataset

    from annotation.exports import TaskExporter
    from annotation.ingest.results import FileResult
    from annotation.ingest.sources import SourceFile
    from annotation.models import Instance, Item, Patient, Project, Study
    from annotation.project_settings import ProjectSettings
    from annotation.quality.agreement import Rating
    from annotation.tasks.label_studio import Regions
    from annotation.training_data import FinalTarget
    from learning.tasks import ItemRef, TaskSpec


@dataclass(frozen=True)
class StoredDicom:
    """A checked DICOM file just stored, de-identified, with its rows: what a task makes items of."""

    project: Project
    instance: Instance
    patient: Patient
    study: Study
    frames: int
    phases: tuple[str, ...]
    clinical: Any
    paths: Any
    sha256: str
    held: bool


class LabelTask:
    """One labelling task as the platform sees it. Subclasses set the class attributes and the methods."""

    # The project's task_type; by default also the learning task's name (learning.tasks).
    name: ClassVar[str]
    title: ClassVar[str]
    learning_task: ClassVar[str] = ""
    # DICOM modalities accepted unless the lead changes the list; empty: the task takes no DICOM files.
    default_modalities: ClassVar[tuple[str, ...]] = ()
    # Whether annotators see the champion's prediction by default, and how the settings page says what they see.
    shows_predictions: ClassVar[bool] = False
    prediction_hint: ClassVar[str] = ""
    # What the project page says the upload takes (HTML allowed: a literal written here, never user input).
    upload_hint: ClassVar[str] = "DICOM files (many at once) or zip archives"
    # Rendered frames can carry burned-in text: the OCR check and the lead's hold list apply.
    burned_in_check: ClassVar[bool] = True
    # Loose rest/stress maps wait on a pairing list for a lead.
    pairs_maps: ClassVar[bool] = False
    # The per-frame agreement table is worth a CSV of its own.
    frame_agreement: ClassVar[bool] = False
    # The workspace tool: an ES module and its stylesheet under frontend/static/ (`mount(root, context)`).
    tool_script: ClassVar[str] = ""
    tool_style: ClassVar[str] = ""
    # Its views on the quality and adjudication pages: an ES module exporting `agreement` and `adjudication`.
    views_script: ClassVar[str] = ""
    # The relations `item_ref` reads, joined when items are loaded for training or scoring.
    input_relations: ClassVar[tuple[str, ...]] = ()
    # The classes `label_classes` and `predicted_classes` name (the lead's item browser filters by them); empty
    # when the task's labels have none (masks).
    class_names: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------------------------------------------ learning
    @property
    def learning_name(self) -> str:
        """Return the name the workers know the task's learning side by (learning.tasks)."""
        return self.learning_task or self.name

    def learning(self) -> type[TaskSpec]:
        """Return the learning side of the task."""
        from learning.tasks import task_class

        return task_class(self.learning_name)

    def item_ref(self, item: Item) -> ItemRef:
        """Return the worker-side reference of an item: what to read, and the metadata the models need."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------------ ingest
    def check_dicom(self, ds: Dataset, frames: int) -> tuple[str, ...]:
        """Refuse a DICOM file this task cannot label (raise Rejection); return the phases of its frames."""
        return ()

    def frame_cache(self) -> str | None:
        """Return how the frames of a stored file are cached for the browser: "frames", "pullback" or None."""
        return "frames"

    def locks_patient(self) -> bool:
        """Return whether items of one patient must be made one import at a time (pairs across files)."""
        return False

    def items_from_dicom(self, stored: StoredDicom) -> int:
        """Create the items a stored DICOM file makes (inside the import's transaction); return how many."""
        raise NotImplementedError(f"{self.name} takes no DICOM files")

    def claims_upload(self, name: str) -> bool:
        """Return whether an uploaded file that is not DICOM (by its name) is one this task ingests itself."""
        return False

    def ingest_uploads(self, project: Project, files: Sequence[SourceFile]) -> list[FileResult]:
        """Ingest the files `claims_upload` took from one upload, all together; return one result per file."""
        return []

    # ------------------------------------------------------------------------------------------------ workspace
    def item_media(self, item: Item) -> dict:
        """Return what the browser tool loads for the item (URLs of its frames or maps, sizes, metadata)."""
        return {}

    # ------------------------------------------------------------------------------------------------ labels
    def parse_label(self, payload: Any, item: Item) -> Any:
        """Validate a label payload for the item (raise LabelPayloadError naming the field); return it typed."""
        raise NotImplementedError

    def label_classes(self, payload: Any) -> tuple[str, ...]:
        """Return the classes a stored label payload gives the item, out of `class_names` (none for a mask)."""
        return ()

    def predicted_classes(self, output: dict) -> tuple[str, ...]:
        """Return the classes a stored prediction's output gives the item, out of `class_names`."""
        return ()

    # ------------------------------------------------------------------------------------------------ training
    def reference_targets(self, project: Project, settings: ProjectSettings) -> dict[int, FinalTarget] | None:
        """Return targets from a reference other than labels (SPECT's angiography), or None to use the labels."""
        return None

    # ------------------------------------------------------------------------------------------------ quality
    def agreement(self, by_item: dict[int, list[Rating]]) -> dict:
        """Return the inter-annotator agreement: overall and per annotator pair."""
        raise NotImplementedError

    def target_agreement(self, mine: Any, target: Any) -> float:
        """Return how far two training targets of an item agree, 1.0 meaning fully."""
        return float(mine == target)

    # ------------------------------------------------------------------------------------------------ queue
    def cold_start_rows(self, project: Project, items: QuerySet[Item]) -> dict[int, tuple]:
        """Return per item the metadata features the order uses before any model (None where missing)."""
        return {}

    # ------------------------------------------------------------------------------------------------ export
    def exporter(self) -> TaskExporter:
        """Return what the task adds to a dataset export: its label columns and its own files (none by default:
        the payload as JSON)."""
        from annotation.exports import PayloadExporter

        return PayloadExporter()

    # ------------------------------------------------------------------------------------------------ Label Studio
    def label_studio_config(self) -> str | None:
        """Return the Label Studio labeling config (XML) that holds the task's labels; None: the task has none, and
        its projects are not labelled in Label Studio (the methods below are then never called)."""
        return None

    def label_studio_images(self, item: Item) -> dict[str, Path]:
        """Return the rendered, de-identified images Label Studio shows for the item, by the config's data key."""
        raise NotImplementedError(f"{self.name} has no Label Studio config")

    def label_studio_result(self, payload: Any, item: Item) -> list[dict]:
        """Return a stored (valid) label payload as Label Studio result regions."""
        raise NotImplementedError(f"{self.name} has no Label Studio config")

    def label_studio_payload(self, regions: Regions, item: Item) -> dict:
        """Return the label payload a Label Studio annotation's regions stand for, in the form `label_studio_result`
        reads (so equal labels map to equal payloads); raise LabelPayloadError naming the control."""
        raise NotImplementedError(f"{self.name} has no Label Studio config")

    def label_studio_prediction(self, output: dict, item: Item) -> list[dict]:
        """Return a stored prediction's output as the regions Label Studio pre-fills ([]: nothing it can show)."""
        return []

    def item_key(self, item: Item) -> str:
        """Return what the item shows independently of its project: the same file imported into another project
        gives the same key ("": none; the item is then found by its id only). Label Studio files carry it hashed."""
        if item.instance is None:
            return ""
        return f"{item.instance.sop_instance_uid}/{item.frame_index or 0}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
