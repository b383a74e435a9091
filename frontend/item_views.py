"""The lead's item browser page: filters, a sortable table, paging and bulk actions, drawn by items.js from the
item browser API. Annotators get the leads-only page (403: splits are hidden from them), strangers a 404."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from annotation.api.permissions import project_for
from annotation.item_browser import SPLITS, STATUSES, annotators_of
from annotation.models import Role


@login_required
def item_browser(request: HttpRequest, slug: str) -> HttpResponse:
    """Every item of the project for its leads, to filter, sort, open in its tool and act on in bulk."""
    project = project_for(request, slug)  # strangers: 404
    if project.viewer_role != Role.LEAD:
        context = {"project": project, "what": "The item browser"}
        return render(request, "frontend/forbidden.html", context, status=403)
    return render(
        request,
        "frontend/items.html",
        {
            "project": project,
            "splits": SPLITS,
            "statuses": [(status, status.replace("_", " ")) for status in STATUSES],
            "classes": project.task.class_names,
            "annotators": annotators_of(project),
        },
    )
