"""Every write Lumen makes, as plain functions named <entity>_<verb>."""

from annotation.services.errors import WorkspaceInputError
from annotation.services.imports import import_enqueue, import_jobs_run_pending, import_run
from annotation.services.labels import LabelConflict, label_submit
from annotation.services.projects import (
    LastLeadError,
    membership_remove,
    membership_set,
    project_create,
    project_update,
)
from annotation.services.queue import (
    assignment_release,
    item_gold_set,
    item_next,
    item_skip,
    leases_expire,
    queue_rerank,
)
from annotation.services.workspace import (
    draft_discard,
    draft_save,
    ica_reference_add,
)

__all__ = [
    "LabelConflict",
    "LastLeadError",
    "WorkspaceInputError",
    "assignment_release",
    "draft_discard",
    "draft_save",
    "ica_reference_add",
    "item_gold_set",
    "item_next",
    "item_skip",
    "import_enqueue",
    "import_jobs_run_pending",
    "import_run",
    "label_submit",
    "leases_expire",
    "membership_remove",
    "membership_set",
    "project_create",
    "project_update",
    "queue_rerank",
]
