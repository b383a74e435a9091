"""Project-scoped permissions: members read, leads manage; non-members get 404, not 403."""

from __future__ import annotations

from django.http import Http404
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request

from annotation.models import Project, Role
from annotation.selectors import member_role, project_role

NO_PROJECT = "No project here."
NO_ITEM = "No such item."


def project_for(request: Request, slug: str, *, lead: bool = False) -> Project:
    """Return the project if the user is a member (a lead, with lead=True); hide it from non-members."""
    # A missing project and one the user is not in read the same: nobody learns which slugs exist.
    project = Project.objects.filter(slug=slug).annotate(member_role=member_role(request.user)).first()
    role = None
    if project is not None:
        role = Role.LEAD if request.user.is_superuser else project.member_role
    if role is None:
        raise Http404(NO_PROJECT)
    if lead and role != Role.LEAD:
        raise PermissionDenied("Only the project's leads can do this.")
    project.viewer_role = role  # the caller's role, so a view need not look it up again
    return project


def require_role(project: Project, request: Request, *, lead: bool = False) -> str:
    """Return the user's role in the project, or refuse (404 for strangers, 403 for annotators where lead=True)."""
    role = project_role(project, request.user)
    if role is None:
        raise Http404(NO_ITEM)
    if lead and role != Role.LEAD:
        raise PermissionDenied("Only the project's leads can do this.")
    return role
