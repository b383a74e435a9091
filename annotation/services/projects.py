"""Create and change projects and their memberships."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from annotation.ingest.burned_in import ocr_available
from annotation.models import Membership, Project, Role
from annotation.project_settings import ProjectSettings, SettingsError, default_settings, parse_settings
from annotation.services.events import user_group, wake
from annotation.services.queue import queue_apply_overlap
from annotation.tasks import label_task


def _settings_usable_here(
    task_type: str, raw: dict[str, Any], changed: dict[str, Any] | None = None
) -> ProjectSettings:
    """Validate settings, and refuse to switch on a check this server cannot run."""
    config = parse_settings(task_type, raw)
    if (changed if changed is not None else raw).get("ocr_burned_in_text") and not ocr_available():
        raise SettingsError("ocr_burned_in_text", "tesseract-ocr is not installed on this server")
    return config


@transaction.atomic
def project_create(
    *,
    slug: str,
    name: str,
    task_type: str,
    creator: User,
    description: str = "",
    instructions: str = "",
    settings: dict[str, Any] | None = None,
) -> Project:
    """Create a project with validated settings; its creator becomes its first lead."""
    label_task(task_type)  # raises UnknownTaskType naming the tasks this server offers
    config = _settings_usable_here(task_type, settings) if settings else default_settings(task_type)
    project = Project.objects.create(
        slug=slug,
        name=name,
        task_type=task_type,
        description=description,
        instructions=instructions,
        settings=config.as_json(),
        created_by=creator,
    )
    Membership.objects.create(project=project, user=creator, role=Role.LEAD)
    return project


@transaction.atomic
def project_update(
    *,
    project: Project,
    name: str | None = None,
    description: str | None = None,
    instructions: str | None = None,
    settings: dict[str, Any] | None = None,
    archived: bool | None = None,
) -> Project:
    """Change a project's name, description, instructions, archive flag or settings (merged over the current ones).

    A new overlap rate re-draws which unlabelled items go to two annotators. Locks the project row; the
    instance passed in is brought up to date too, so the caller never goes on with stale settings.
    """
    locked = Project.objects.lock(project.pk)
    for field in ("name", "description", "instructions", "archived", "settings"):
        setattr(project, field, getattr(locked, field))
    if name is not None:
        project.name = name
    if description is not None:
        project.description = description
    if instructions is not None:
        project.instructions = instructions
    if archived is not None:
        project.archived = archived
    overlap_before = parse_settings(project.task_type, project.settings).overlap_rate
    if settings is not None:
        merged = {**project.settings, **settings}
        project.settings = _settings_usable_here(project.task_type, merged, changed=settings).as_json()
    project.save()
    if parse_settings(project.task_type, project.settings).overlap_rate != overlap_before:
        queue_apply_overlap(project=project)
    return project


class LastLeadError(ValueError):
    """Removing or demoting this member would leave the project without a lead."""


@transaction.atomic
def membership_set(*, project: Project, user: User, role: str) -> Membership:
    """Add a member or change their role; the last lead cannot be demoted. Locks the project's memberships."""
    members = list(Membership.objects.select_for_update().filter(project=project))
    leads = [m for m in members if m.role == Role.LEAD]
    if role != Role.LEAD and [m.user_id for m in leads] == [user.pk]:
        raise LastLeadError("a project needs at least one lead; add another lead first")
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    transaction.on_commit(lambda: wake(user_group(user.pk)))  # their open pages hear with the new role at once
    return membership


@transaction.atomic
def membership_remove(*, project: Project, user: User) -> None:
    """Remove a member; the last lead cannot be removed. Locks the project's memberships."""
    members = list(Membership.objects.select_for_update().filter(project=project))
    target = next((m for m in members if m.user_id == user.pk), None)
    if target is None:
        return
    leads = [m for m in members if m.role == Role.LEAD]
    if target.role == Role.LEAD and len(leads) == 1:
        raise LastLeadError("a project needs at least one lead; add another lead first")
    target.delete()
    transaction.on_commit(lambda: wake(user_group(user.pk)))  # their open pages stop hearing events at once
