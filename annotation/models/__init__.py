"""Lumen's data model, one module per area, re-exported here."""

from annotation.models.connections import ExternalServer, ServerKind
from annotation.models.dicom import BurnedInReview, Instance, Patient, PatientIdentity, Series, Study
from annotation.models.items import IcaReference, Item, ItemKind, PolarMap, PolarMapPhase, Sex, SpectExam, Split
from annotation.models.jobs import ImportFile, Job, JobKind, JobStatus, LiveEvent
from annotation.models.labels import (
    Assignment,
    AssignmentKind,
    AssignmentState,
    Draft,
    Label,
    LabelSource,
    PseudoLabel,
)
from annotation.models.learning import ModelStatus, ModelVersion, Prediction, TrainingExample
from annotation.models.projects import Membership, Project, Role, TaskType
from annotation.models.quality import Adjudication, AdjudicationReason, ReviewItem, ReviewRequest
from annotation.models.queue import ProjectQueue, QueueEntry, WorkTally
from annotation.models.research import Dominance, Ecg, ExamReport, InterpolationModel, Lesion

__all__ = [
    "Lesion",
    "InterpolationModel",
    "ExamReport",
    "Ecg",
    "Dominance",
    "BurnedInReview",
    "Adjudication",
    "AdjudicationReason",
    "Assignment",
    "AssignmentKind",
    "AssignmentState",
    "Draft",
    "ExternalServer",
    "IcaReference",
    "ImportFile",
    "Instance",
    "Item",
    "ItemKind",
    "Job",
    "JobKind",
    "JobStatus",
    "Label",
    "LiveEvent",
    "LabelSource",
    "Membership",
    "ModelStatus",
    "ModelVersion",
    "Patient",
    "PatientIdentity",
    "PolarMap",
    "PolarMapPhase",
    "Prediction",
    "Project",
    "ProjectQueue",
    "PseudoLabel",
    "QueueEntry",
    "ReviewItem",
    "ReviewRequest",
    "Role",
    "Series",
    "ServerKind",
    "Sex",
    "SpectExam",
    "Split",
    "Study",
    "TaskType",
    "TrainingExample",
    "WorkTally",
]
