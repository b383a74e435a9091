"""The leads' label-quality pages: the quality dashboard and adjudicating one item. Annotators get a 403 page,
people outside the project a 404; every number on the pages comes from the quality API."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from annotation import selectors
from annotation.api.permissions import project_for
from annotation.models import AdjudicationReason, Item, Project, Role


def _lead_project(request: HttpRequest, slug: str) -> tuple[Project, HttpResponse | None]:
    """Return the project and, where the user is not one of its leads, the 403 page to answer instead."""
    project = project_for(request, slug)  # strangers: 404
    if selectors.project_role(project, request.user) == Role.LEAD:
        return project, None
    refusal = render(request, "frontend/forbidden.html", {"project": project}, status=403)
    return project, refusal


@login_required
def quality_dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    """Label quality for leads: agreement, annotators, model health and the adjudication queue (quality.js)."""
    project, refusal = _lead_project(request, slug)
    return refusal or render(request, "frontend/quality.html", {"project": project})


@login_required
def adjudicate(request: HttpRequest, slug: str, item_id: int) -> HttpResponse:
    """Settle one item: the task's tool for the final label beside every annotator's label and the model's."""
    project, refusal = _lead_project(request, slug)
    if refusal:
        return refusal
    item = get_object_or_404(Item, pk=item_id, project=project)
    # An unknown reason is passed on as given: the API refuses it and the page shows why.
    reason = request.GET.get("reason") or AdjudicationReason.LEAD
    return render(
        request,
        "frontend/adjudicate.html",
        {
            "project": project,
            "item": item,
            "reason": reason,
            "reason_text": dict(AdjudicationReason.choices).get(reason, "unknown reason"),
        },
    )
