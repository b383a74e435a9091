"""Reads that decide what each user may see; every API list starts from one of these."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from annotation.compiled import CompiledQuery
from annotation.models import (
    Assignment,
    AssignmentKind,
    AssignmentState,
    BurnedInReview,
    Draft,
    IcaReference,
    Instance,
    InterpolationModel,
    Item,
    Job,
    Label,
    Membership,
    ModelStatus,
    ModelVersion,
    Patient,
    PolarMap,
    Prediction,
    Project,
    ProjectQueue,
    ReviewItem,
    Role,
    Split,
    WorkTally,
)
from annotation.project_settings import default_settings, parse_settings
from annotation.tasks import label_tasks


def project_role(project: Project, user: User) -> str | None:
    """Return the user's role in the project ("lead", "annotator") or None; superusers act as leads."""
    if user.is_superuser:
        return Role.LEAD
    return Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()


def role_in(user: User, project_ref: str = "pk") -> Subquery | Value:
    """The user's role in the project of each row of the outer query (`project_ref`: its project id), as an
    annotation: NULL for non-members, a lead for superusers (as `project_role` says)."""
    if user.is_superuser:
        return Value(Role.LEAD)
    return Subquery(Membership.objects.filter(project=OuterRef(project_ref), user=user.pk).values("role")[:1])


def _items_per_project(labels: QuerySet[Label]) -> Coalesce:
    """Count the distinct items of `labels` in the outer query's project (one aggregate subquery per project)."""
    counted = labels.filter(item__project=OuterRef("pk")).order_by().values("item__project")
    return Coalesce(Subquery(counted.annotate(n=Count("item", distinct=True)).values("n")[:1]), 0)


def projects_for(user: User) -> QuerySet[Project]:
    """Return the projects a user belongs to, with their item count, how many items carry a current label,
    and how many carry the user's own current label."""
    projects = Project.objects.all() if user.is_superuser else Project.objects.filter(memberships__user=user)
    current = Label.objects.current()
    items = Item.objects.filter(project=OuterRef("pk")).order_by().values("project")
    return projects.annotate(
        item_count=Coalesce(Subquery(items.annotate(n=Count("pk")).values("n")[:1]), 0),
        labelled_count=_items_per_project(current),
        my_labelled_count=_items_per_project(current.filter(author=user)),
    ).order_by("name", "slug")


def _projects_where(user: User, role: str | None = None) -> QuerySet[Project]:
    if user.is_superuser:
        return Project.objects.all()
    memberships = Membership.objects.filter(user=user)
    if role:
        memberships = memberships.filter(role=role)
    return Project.objects.filter(pk__in=memberships.values("project"))


def items_for(user: User) -> QuerySet[Item]:
    """The items a user may see, each with the user's role in its project as `viewer_role`."""
    return (
        Item.objects.filter(project__in=_projects_where(user))
        .select_related("project", "patient", "instance", "spect", "spect__rest", "spect__stress")
        .annotate(viewer_role=role_in(user, "project_id"))
        .order_by("pk")
    )


def frames_of(user: User, item_id: int) -> Instance | None:
    """The DICOM instance whose rendered frames the item shows, if the user may see the item (one short query:
    every frame request of the cine player and the OCT tool asks it); None for a hidden item or one without
    frames."""
    return _FRAMES_OF.first(user=user, item_id=item_id) if user.is_authenticated else None


_FRAMES_OF: CompiledQuery[Instance] = CompiledQuery(
    lambda user, item_id: Instance.objects.filter(items__pk=item_id, items__project__in=_projects_where(user))
    .only("pk", "number_of_frames", "frames_dir", "frame_format")
    .order_by("pk")[:1]
)


def items_to_label(user: User) -> QuerySet[Item]:
    """The items a user may label, each with the user's role in its project as `viewer_role` (one query: what a
    submit reads before storing the label)."""
    items = Item.objects.select_related("project", "instance").annotate(viewer_role=role_in(user, "project_id"))
    return items if user.is_superuser else items.filter(viewer_role__isnull=False)


def labels_for(user: User) -> QuerySet[Label]:
    """Leads see every label in the projects they lead; everyone else only their own."""
    return (
        Label.objects.filter(
            Q(item__project__in=_projects_where(user, Role.LEAD))
            | Q(author=user, item__project__in=_projects_where(user))
        )
        .select_related("item", "author")
        .order_by("item_id", "author_id", "version")
    )


def _shows_predictions() -> Q:
    # Projects store their full settings, but fall back to the task default (shown for OCT) when the key is absent.
    shown_by_default = [name for name, task in label_tasks().items() if task.shows_predictions]
    return Q(settings__show_predictions_to_annotators=True) | (
        Q(task_type__in=shown_by_default) & ~Q(settings__has_key="show_predictions_to_annotators")
    )


def predictions_for(user: User) -> QuerySet[Prediction]:
    """Leads see all predictions; annotators only where the project shows predictions to them, and never of a
    held-out test item (labelled without the model's suggestion)."""
    shown = _projects_where(user).filter(_shows_predictions())
    return (
        Prediction.objects.filter(
            Q(item__project__in=_projects_where(user, Role.LEAD))
            | (Q(item__project__in=shown) & ~Q(item__split=Split.TEST))
        )
        .select_related("model_version")
        .order_by("model_version_id", "item_id", "pk")
    )


def model_versions_for(user: User) -> QuerySet[ModelVersion]:
    # Explicit: Meta.ordering is dropped once the list view annotates a count (a GROUP BY query).
    return (
        ModelVersion.objects.filter(project__in=_projects_where(user, Role.LEAD))
        .select_related("parent", "compared_with")
        .order_by("project_id", "-number")
    )


def polar_maps_for(user: User) -> QuerySet[PolarMap]:
    """SPECT polar maps of the projects the user leads (the pairing list)."""
    return (
        PolarMap.objects.filter(project__in=_projects_where(user, Role.LEAD))
        .select_related("project", "patient", "rest_exam", "stress_exam")
        .order_by("pk")
    )


def jobs_for(user: User) -> QuerySet[Job]:
    return Job.objects.filter(project__in=_projects_where(user, Role.LEAD)).order_by("-created_at", "-pk")


def patients_of(project: Project) -> QuerySet[Patient]:
    """Return the project's patients with their original identities (for the lead's pseudonym map)."""
    return (
        Patient.objects.filter(Q(items__project=project) | Q(studies__project=project) | Q(polar_maps__project=project))
        .distinct()
        .select_related("identity")
        .order_by("pseudonym")
    )


def _count_per_item(rows: QuerySet) -> Coalesce:
    return Coalesce(Subquery(rows.order_by().values("item").annotate(n=Count("pk")).values("n")[:1]), 0)


def items_open_for(project: Project, annotator: User) -> QuerySet[Item]:
    """Return the items the annotator may still label: not labelled or skipped by them, short of required labels,
    not excluded by a lead."""
    mine = Label.objects.current().filter(item=OuterRef("pk"), author=annotator)
    skipped = Assignment.objects.filter(item=OuterRef("pk"), annotator=annotator, state=AssignmentState.SKIPPED)
    labels = Label.objects.current().filter(item=OuterRef("pk"))
    return (
        Item.objects.filter(project=project, excluded_at__isnull=True)
        .exclude(Exists(mine))
        .exclude(Exists(skipped))
        .annotate(n_labels=_count_per_item(labels))
        .filter(n_labels__lt=F("required_labels"))
    )


# ------------------------------------------------------------------------------------------ progress tallies
TALLY_FIELDS = ("done", "skipped", "excused", "handouts", "gold_handouts")


def _wanting(project_id: int):
    # An item a lead excluded wants no labels until it is included again.
    return Item.objects.filter(project_id=project_id, labellers__lt=F("required_labels"), excluded_at__isnull=True)


def wanting_count(project_id: int) -> int:
    """Count the project's items that want labels from the rows (indexed by project; a scan of the project)."""
    return _wanting(project_id).count()


TALLY_CHUNK = 10000  # item ids per query when counting which of an annotator's items still want labels


def tally_count(project_id: int, annotator_id: int) -> dict[str, int]:
    """Count an annotator's tally in a project from the rows (what the incremental counters must equal).

    Read from the annotator's own labels and assignments (indexed by author and by annotator), never by scanning
    the project's items: a new annotator's first `next` counts their tally, and in a project of a million items a
    scan took a quarter of a second.
    """
    in_project = {"item__project_id": project_id}
    labelled = set(
        Label.objects.current().filter(author_id=annotator_id, **in_project).values_list("item_id", flat=True)
    )
    skipped = set(
        Assignment.objects.filter(annotator_id=annotator_id, state=AssignmentState.SKIPPED, **in_project).values_list(
            "item_id", flat=True
        )
    )
    touched = sorted(labelled | skipped)
    excused = sum(
        _wanting(project_id).filter(pk__in=touched[start : start + TALLY_CHUNK]).count()
        for start in range(0, len(touched), TALLY_CHUNK)
    )
    handouts = (
        Assignment.objects.filter(annotator_id=annotator_id, **in_project)
        .exclude(kind=AssignmentKind.REVIEW)
        .aggregate(total=Count("pk"), gold=Count("pk", filter=Q(kind=AssignmentKind.GOLD)))
    )
    return {
        "done": len(labelled),  # one current label per item and author
        "skipped": len(skipped - labelled),
        "excused": excused,
        "handouts": handouts["total"],
        "gold_handouts": handouts["gold"],
    }


def tally_of(project: Project, annotator_id: int) -> dict[str, int]:
    """Return an annotator's tally: the stored counters, or counted from the rows when none is stored yet."""
    stored = WorkTally.objects.filter(project=project, annotator_id=annotator_id).values(*TALLY_FIELDS).first()
    return stored if stored is not None else tally_count(project.pk, annotator_id)


# An annotator's progress in one round trip (`next` shows it with every hand-out).
_PROGRESS_SQL = """
SELECT q.wanting_items, t.done, t.skipped, t.excused, (
    SELECT COUNT(*) FROM annotation_reviewitem ri JOIN annotation_reviewrequest rr ON rr.id = ri.request_id
    JOIN annotation_item i ON i.id = ri.item_id
    WHERE rr.project_id = %(project)s AND rr.annotator_id = %(annotator)s AND ri.resolved_at IS NULL
      AND i.excluded_at IS NULL
)
FROM annotation_project p
LEFT JOIN annotation_projectqueue q ON q.project_id = p.id
LEFT JOIN annotation_worktally t ON t.project_id = p.id AND t.annotator_id = %(annotator)s
WHERE p.id = %(project)s
"""


def work_progress(project: Project, annotator: User) -> dict[str, int]:
    """Return the annotator's counts in the project: still to do, labelled, skipped, sent back for review."""
    with connection.cursor() as cursor:
        cursor.execute(_PROGRESS_SQL, {"project": project.pk, "annotator": annotator.pk})
        wanting, done, skipped, excused, to_review = cursor.fetchone()
    if done is None:  # no tally yet: counted from the rows
        tally = tally_count(project.pk, annotator.pk)
        done, skipped, excused = tally["done"], tally["skipped"], tally["excused"]
    if wanting is None:
        wanting = wanting_count(project.pk)
    return {"to_do": max(wanting - excused, 0), "done": done, "skipped": skipped, "to_review": to_review}


def recent_labels_of(project: Project, annotator: User, limit: int = 50) -> QuerySet[Label]:
    """Return the annotator's current labels in the project, newest first (for "back to previous item")."""
    return (
        Label.objects.current()
        .filter(item__project=project, author=annotator)
        .select_related("item")
        .order_by("-created_at", "-id")[:limit]
    )


def promoted_predictions(project: Project, item_ids=None) -> dict[int, Prediction]:
    """Return each item's newest prediction by a model version that was ever champion (what annotators and
    leads were shown as the model's opinion), optionally only for `item_ids`."""
    rows = Prediction.objects.filter(
        item__project=project,
        model_version__promoted_at__isnull=False,
        model_version__status__in=(ModelStatus.CHAMPION, ModelStatus.RETIRED),
    ).select_related("model_version")
    if item_ids is not None:
        rows = rows.filter(item_id__in=item_ids)
    newest: dict[int, Prediction] = {}
    for prediction in rows.order_by("item_id", "created_at", "pk"):
        newest[prediction.item_id] = prediction
    return newest


def open_review(item: Item, annotator: User) -> ReviewItem | None:
    """Return the lead's open request that the annotator look at their label of the item again, if any."""
    return (
        ReviewItem.objects.filter(item=item, request__annotator=annotator, resolved_at__isnull=True)
        .select_related("request__requested_by")
        .order_by("request__created_at")
        .first()
    )


def with_workspace_state(items: QuerySet[Item], user: User) -> QuerySet[Item]:
    """Annotate in the item's own query what the workspace would otherwise look up one query each (they are
    usually absent): whether `user` holds a current label, a draft and an open review request of the item, their
    open lease's expiry, and the project's newest frame-interpolation model (`workspace_body` reads these)."""
    item = OuterRef("pk")
    return items.annotate(
        has_label=Exists(Label.objects.current().filter(item=item, author=user)),
        has_draft=Exists(Draft.objects.filter(item=item, author=user)),
        has_review=Exists(ReviewItem.objects.filter(item=item, request__annotator=user, resolved_at__isnull=True)),
        lease_expires_at=Subquery(
            Assignment.objects.filter(item=item, annotator=user, state=AssignmentState.LEASED).values("expires_at")[:1]
        ),
        latest_interpolation_model=latest_interpolation_model(OuterRef("project_id")),
    )


# The hot path's item queries, compiled once per process (annotation.compiled): each item reload, `next` and submit
# runs one of them.
_WORKSPACE_ITEM: CompiledQuery[Item] = CompiledQuery(
    lambda user, item_id: with_workspace_state(items_for(user), user).filter(pk=item_id)
)
_LEASED_ITEM: CompiledQuery[Item] = CompiledQuery(
    lambda item_id, annotator_id, project_id: Item.objects.select_related("patient", "instance")
    .annotate(
        has_draft=Exists(Draft.objects.filter(item=OuterRef("pk"), author_id=annotator_id)),
        latest_interpolation_model=latest_interpolation_model(project_id),
    )
    .filter(pk=item_id)
)
_ITEM_TO_LABEL: CompiledQuery[Item] = CompiledQuery(lambda user, item_id: items_to_label(user).filter(pk=item_id))


def workspace_item(user: User, item_id: int) -> Item | None:
    """The item as the workspace shows it to `user` (`items_for` with `with_workspace_state`), or None when they
    may not see it."""
    return _WORKSPACE_ITEM.first(user=user, item_id=item_id)


def leased_item(item_id: int, annotator_id: int, project_id: int) -> Item:
    """The item an annotator was just handed in project `project_id`, with its patient and instance, whether they
    left a draft of it and the project's newest interpolation model (what the workspace reads), in one query."""
    item = _LEASED_ITEM.first(item_id=item_id, annotator_id=annotator_id, project_id=project_id)
    if item is None:
        raise Item.DoesNotExist(f"no item {item_id}")
    return item


def item_to_label(user: User, item_id: int) -> Item | None:
    """The item if `user` may label it (`items_to_label`), else None."""
    return _ITEM_TO_LABEL.first(user=user, item_id=item_id)


def latest_interpolation_model(project_id: Any) -> Subquery:
    """The id of the newest frame-interpolation model of project `project_id` (an id or an OuterRef; NULL: none)."""
    newest = InterpolationModel.objects.filter(project_id=project_id).order_by("-created_at", "-pk")
    return Subquery(newest.values("pk")[:1])


def current_label(item: Item, author: User) -> Label | None:
    """Return the author's current label of the item (its newest version), or None."""
    return Label.objects.current().filter(item=item, author=author).first()


def draft_of(item: Item, author: User) -> Draft | None:
    return Draft.objects.filter(item=item, author=author).first()


def latest_ica(item: Item) -> IcaReference | None:
    return item.ica_references.select_related("entered_by").first()


def open_lease(item: Item, annotator: User) -> Assignment | None:
    return Assignment.objects.filter(item=item, annotator=annotator, state=AssignmentState.LEASED).first()


def pullback_frames(item: Item, author: User) -> list[dict]:
    """Return the frames of the item's pullback with what the author has stored for each (mask/excluded/None)."""
    if item.instance_id is None:
        raise ValueError(f"item {item.pk} is not a frame of a pullback")
    frames = Item.objects.filter(instance_id=item.instance_id, kind=item.kind).order_by("frame_index")
    stored = Label.objects.current().filter(item__in=frames, author=author)
    # Read only the excluded flag: the masks themselves can be large.
    mine = {
        pk: ("excluded" if excluded else "mask") for pk, excluded in stored.values_list("item_id", "payload__excluded")
    }
    return [
        {"item": pk, "frame_index": index, "mine": mine.get(pk)}
        for pk, index in frames.values_list("pk", "frame_index")
    ]


def prediction_shown(item: Item) -> Prediction | None:
    """Return the champion model's prediction of the item if the project shows predictions while labelling.

    Never for a held-out test item: the locked test set is labelled without the model's suggestion, or the
    model would be judged on labels it helped to draw.
    """
    if item.split == Split.TEST:
        return None
    project = item.project
    shows = (project.settings or {}).get("show_predictions_to_annotators")
    if shows is None:  # the task's default (no full settings parse on the hand-out path)
        shows = default_settings(project.task_type).show_predictions_to_annotators
    if not shows:
        return None
    return (
        Prediction.objects.filter(item=item, model_version__status=ModelStatus.CHAMPION)
        .select_related("model_version")
        .order_by("-created_at")
        .first()
    )


def queue_of(project: Project) -> ProjectQueue:
    """Return the project's queue row (an empty one, not saved, before the first import)."""
    return ProjectQueue.objects.select_related("model_version").filter(pk=project.pk).first() or ProjectQueue(
        project=project
    )


def split_summary(project: Project) -> dict:
    """Return the split settings and, per split, how many patients and items it holds and how many are labelled."""
    settings = parse_settings(project.task_type, project.settings)
    current = Label.objects.current().filter(item=OuterRef("pk"))
    rows = (
        Item.objects.filter(project=project)
        .values("split")
        .annotate(
            patients=Count("patient", distinct=True),
            items=Count("pk"),
            labelled=Count("pk", filter=Q(Exists(current))),
        )
    )
    counts = {row["split"] or "unassigned": {k: row[k] for k in ("patients", "items", "labelled")} for row in rows}
    return {
        "test_fraction": settings.test_fraction,
        "validation_fraction": settings.validation_fraction,
        "split_seed": settings.split_seed,
        "test_set_locked": settings.test_set_locked,
        "splits": {
            name: counts.get(name, {"patients": 0, "items": 0, "labelled": 0})
            for name in ("train", "validation", "test", "unassigned")
        },
    }


def label_studio_items(project: Project) -> QuerySet[Item]:
    """Return the items of the project Label Studio may show: none a lead excluded, none whose file waits for (or
    was excluded by) a burned-in text review; with the rows the tasks read to find their rendered images."""
    return (
        Item.objects.filter(project=project, excluded_at__isnull=True)
        .exclude(instance__burned_in_review__in=(BurnedInReview.PENDING, BurnedInReview.EXCLUDED))
        .select_related("project", "instance", "spect__rest__instance", "spect__stress__instance")
        .order_by("pk")
    )


def champion_predictions(project: Project) -> dict[int, Prediction]:
    """Return the champion's prediction of each item, except held-out test items (labelled without it)."""
    rows = (
        Prediction.objects.filter(item__project=project, model_version__status=ModelStatus.CHAMPION)
        .exclude(item__split=Split.TEST)
        .select_related("model_version")
    )
    return {prediction.item_id: prediction for prediction in rows}
