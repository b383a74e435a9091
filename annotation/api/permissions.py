"""Project-scoped permissions: members read, leads manage; non-members get 404, not 403."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from django.contrib.auth.models import AnonymousUser, User
from django.http import Http404, HttpRequest
from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.request import Request

from annotation.compiled import CompiledQuery
from annotation.models import Project, Role
from annotation.selectors import project_role, role_in

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    class ViewerRole(TypedDict):
        viewer_role: str  # never None: `project_for` refuses non-members

    ProjectWithRole = WithAnnotations[Project, ViewerRole]  # what `project_for` returns


NO_PROJECT = "No project here."
NO_ITEM = "No such item."


def signed_in(request: HttpRequest | Request) -> User:
    """Return the request's user, who is signed in: every view that asks requires it (401 otherwise)."""
    user: User | AnonymousUser = request.user  # DRF's Request is untyped
    if not user.is_authenticated:
        raise NotAuthenticated()
    return user


# Most project views start here: compiled once per process (annotation.compiled).
_PROJECT_WITH_ROLE: CompiledQuery[Any] = CompiledQuery(
    lambda slug, user: Project.objects.filter(slug=slug).annotate(viewer_role=role_in(user))
)


def project_for(request: Request, slug: str, *, lead: bool = False) -> ProjectWithRole:
    """Return the project if the user is a member (a lead, with lead=True); hide it from non-members.

    The project carries the caller's role as `viewer_role`, read in the same query, so a view need not look it up.
    """
    # A missing project and one the user is not in read the same: nobody learns which slugs exist.
    project = _PROJECT_WITH_ROLE.first(slug=slug, user=request.user) if request.user.is_authenticated else None
    if project is None or project.viewer_role is None:
        raise Http404(NO_PROJECT)
    if lead and project.viewer_role != Role.LEAD:
        raise PermissionDenied("Only the project's leads can do this.")
    return project


def require_role(project: Project, request: Request, *, lead: bool = False) -> str:
    """Return the user's role in the project, or refuse (404 for strangers, 403 for annotators where lead=True)."""
    role = project_role(project, request.user)
    if role is None:
        raise Http404(NO_ITEM)
    if lead and role != Role.LEAD:
        raise PermissionDenied("Only the project's leads can do this.")
    return role
