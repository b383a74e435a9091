"""Reads that decide what each user may see; every API list starts from one of these."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Count, Exists, OuterRef, Q, QuerySet

from annotation.models import Item, Job, Label, Membership, ModelVersion, Patient, Prediction, Project, Role


def project_role(project: Project, user: AbstractBaseUser) -> str | None:
    """Return the user's role in the project ("lead", "annotator") or None; superusers act as leads."""
    if user.is_superuser:
        return Role.LEAD
    return Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()


def projects_for(user: AbstractBaseUser) -> QuerySet[Project]:
    """Return the projects a user belongs to, with item and labelled counts."""
    projects = Project.objects.all() if user.is_superuser else Project.objects.filter(memberships__user=user)
    labelled = Label.objects.filter(item=OuterRef("pk"), superseded_at__isnull=True)
    mine = labelled.filter(author=user)
    return projects.annotate(
        item_count=Count("items", distinct=True),
        labelled_count=Count("items", filter=Q(Exists(labelled)), distinct=True),
        my_labelled_count=Count("items", filter=Q(Exists(mine)), distinct=True),
    ).order_by("name")


def _projects_where(user: AbstractBaseUser, role: str | None = None) -> QuerySet[Project]:
    if user.is_superuser:
        return Project.objects.all()
    memberships = Membership.objects.filter(user=user)
    if role:
        memberships = memberships.filter(role=role)
    return Project.objects.filter(pk__in=memberships.values("project"))


def items_for(user: AbstractBaseUser) -> QuerySet[Item]:
    return Item.objects.filter(project__in=_projects_where(user)).select_related(
        "project", "patient", "instance", "spect", "spect__rest", "spect__stress"
    )


def labels_for(user: AbstractBaseUser) -> QuerySet[Label]:
    """Leads see every label in the projects they lead; everyone else only their own."""
    return Label.objects.filter(
        Q(item__project__in=_projects_where(user, Role.LEAD)) | Q(author=user, item__project__in=_projects_where(user))
    ).select_related("item", "author")


def predictions_for(user: AbstractBaseUser) -> QuerySet[Prediction]:
    """Leads see all predictions; annotators only where the project shows predictions to them."""
    shown = _projects_where(user).filter(settings__show_predictions_to_annotators=True)
    return Prediction.objects.filter(
        Q(item__project__in=_projects_where(user, Role.LEAD)) | Q(item__project__in=shown)
    ).select_related("model_version")


def model_versions_for(user: AbstractBaseUser) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(project__in=_projects_where(user, Role.LEAD))


def jobs_for(user: AbstractBaseUser) -> QuerySet[Job]:
    return Job.objects.filter(project__in=_projects_where(user, Role.LEAD))


def patients_of(project: Project) -> QuerySet[Patient]:
    """Return the project's patients with their original identities (for the lead's pseudonym map)."""
    return (
        Patient.objects.filter(Q(items__project=project) | Q(studies__project=project) | Q(polar_maps__project=project))
        .distinct()
        .select_related("identity")
        .order_by("pseudonym")
    )
