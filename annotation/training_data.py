"""Reads that turn a project's items and labels into the data references a training or scoring job sends.

Workers never see the database: they get `learning.tasks` dataclasses holding file paths (relative to
MEDIA_ROOT), targets and the ids of the label versions behind them, so the exact training set can be
registered with the model version.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings as django_settings
from django.db.models import QuerySet

from annotation.models import (
    IcaReference,
    Item,
    Label,
    LabelSource,
    ModelStatus,
    Project,
    PseudoLabel,
    Role,
    Split,
)
from annotation.project_settings import ProjectSettings, parse_settings
from annotation.tasks import LabelTask, label_task
from learning.tasks import Example, TaskSpec


@dataclass(frozen=True)
class FinalTarget:
    """The target an item trains and evaluates on, and the row it came from."""

    target: object
    label: Label | None = None
    ica_reference: IcaReference | None = None


@dataclass(frozen=True)
class TrainingSet:
    train: tuple[Example, ...]
    validation: tuple[Example, ...]
    test: tuple[Example, ...]
    disputed: int  # items whose annotators disagree and that wait for adjudication

    @property
    def human_train(self) -> int:
        return sum(not e.is_pseudo for e in self.train)


def items_with_inputs(project: Project) -> QuerySet[Item]:
    """Return the project's items with the rows their task's `item_ref` reads already joined."""
    return Item.objects.filter(project=project).select_related(*label_task(project.task_type).input_relations)


def final_targets(project: Project, settings: ProjectSettings | None = None) -> tuple[dict[int, FinalTarget], int]:
    """Return each labelled item's final target, and how many items are disputed.

    The rule: an adjudicated label wins; else a lead's label; else the annotators' current labels when
    they agree (the task decides what agreeing means; the newest label is recorded); disagreeing items
    wait for adjudication and neither train nor evaluate. Labels that cannot train (an unusable run, an
    excluded frame) give no target. SPECT projects on the ICA reference take the newest ICA row instead.
    """
    settings = settings or parse_settings(project.task_type, project.settings)
    task = label_task(project.task_type)
    spec = task.learning()
    leads = set(project.memberships.filter(role=Role.LEAD).values_list("user_id", flat=True))
    reference = task.reference_targets(project, settings)
    if reference is not None:
        return reference, 0
    current: dict[int, list[Label]] = defaultdict(list)
    for label in Label.objects.current().filter(item__project=project).order_by("created_at"):
        current[label.item_id].append(label)
    out, disputed = {}, 0
    for item_id, labels in current.items():
        chosen = _settled(labels, leads) or _agreed(spec, labels)
        if chosen is None:
            disputed += 1
            continue
        target = spec.target_from_payload(chosen.payload)
        if target is not None:
            out[item_id] = FinalTarget(target=target, label=chosen)
    return out, disputed


def _settled(labels: list[Label], leads: set[int]) -> Label | None:
    for source_ok in (lambda lb: lb.source == LabelSource.ADJUDICATION, lambda lb: lb.author_id in leads):
        settled = [label for label in labels if source_ok(label)]
        if settled:
            return settled[-1]
    return None


def targets_all_agree(spec: type[TaskSpec], targets: list) -> bool:
    """Return whether every target agrees with the first (no target, e.g. "unusable", agrees only with none)."""
    first = targets[0]
    for other in targets[1:]:
        if (first is None) != (other is None) or (first is not None and not spec.targets_agree(first, other)):
            return False
    return True


def _agreed(spec: type[TaskSpec], labels: list[Label]) -> Label | None:
    targets = [spec.target_from_payload(label.payload) for label in labels]
    return labels[-1] if targets_all_agree(spec, targets) else None


def training_set(project: Project) -> TrainingSet:
    """Return the examples by split; pseudo-labels of the champion join the training split when enabled.

    Pseudo-labels only stand in for training items nobody has labelled; they never validate or test. Items a lead
    excluded neither train nor evaluate (their labels stay in the history).
    """
    settings = parse_settings(project.task_type, project.settings)
    task = label_task(project.task_type)
    targets, disputed = final_targets(project, settings)
    items = {item.pk: item for item in items_with_inputs(project).filter(pk__in=targets, excluded_at__isnull=True)}
    by_split: dict[str, list[Example]] = defaultdict(list)
    for item_id, final in sorted(targets.items()):
        item = items.get(item_id)
        if item is None:  # excluded
            continue
        by_split[item.split or Split.TRAIN].append(
            Example(
                ref=task.item_ref(item),
                target=final.target,
                split=item.split or Split.TRAIN,
                label_id=final.label.pk if final.label else None,
                label_version=final.label.version if final.label else None,
                ica_reference_id=final.ica_reference.pk if final.ica_reference else None,
                group=item.patient_id,
            )
        )
    if settings.pseudo_label_threshold is not None:
        by_split[Split.TRAIN].extend(_pseudo_examples(project, task, exclude=set(targets)))
    return TrainingSet(
        train=tuple(by_split[Split.TRAIN]),
        validation=tuple(by_split[Split.VALIDATION]),
        test=tuple(by_split[Split.TEST]),
        disputed=disputed,
    )


def _pseudo_examples(project: Project, task: LabelTask, exclude: set[int]) -> Iterable[Example]:
    pseudo = (
        PseudoLabel.objects.filter(
            item__project=project,
            item__split__in=[Split.TRAIN, Split.UNASSIGNED],
            item__excluded_at__isnull=True,
            model_version__status=ModelStatus.CHAMPION,
        )
        .exclude(item_id__in=exclude)
        .exclude(item__labels__isnull=False)
        .select_related(*(f"item__{relation}" for relation in task.input_relations))
        .order_by("item_id")
    )
    for row in pseudo:
        yield Example(
            ref=task.item_ref(row.item),
            target=row.payload["target"],
            split=Split.TRAIN,
            pseudo_label_id=row.pk,
            group=row.item.patient_id,
        )


def media_root() -> str:
    return str(django_settings.MEDIA_ROOT)
