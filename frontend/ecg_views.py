"""The lead's ECG pages: the project's 12-lead ECGs with the pairs export, and one ECG drawn on ECG paper by
ecg.js from the signal API. Annotators get the leads-only page (403), strangers a 404."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from annotation.api.permissions import project_for
from annotation.models import Role
from annotation.services.ecg import ecg_duration_s, ecg_pairs
from learning.domain import STENOSIS_VESSELS

# The list shows this many ECGs; the API pages through all of them.
LIST_LIMIT = 500


def _leads_only(request: HttpRequest, project) -> HttpResponse:
    return render(request, "frontend/forbidden.html", {"project": project, "what": "The ECG list"}, status=403)


@login_required
def ecg_list(request: HttpRequest, slug: str) -> HttpResponse:
    """The project's ECGs by patient, and what the ECG ↔ stenosis pairs export holds."""
    project = project_for(request, slug)  # strangers: 404
    if project.viewer_role != Role.LEAD:
        return _leads_only(request, project)
    ecgs = project.ecgs.select_related("patient").order_by("patient__pseudonym", "acquired_at", "id")
    summary = ecg_pairs(project=project).summary
    return render(
        request,
        "frontend/ecgs.html",
        {
            "project": project,
            "rows": [(ecg, ecg_duration_s(ecg)) for ecg in ecgs[:LIST_LIMIT]],
            "ecg_total": summary.ecgs,
            "summary": summary,
            "label_columns": [
                (column, summary.negatives[column], summary.positives[column]) for column in summary.positives
            ],
            "vessels": STENOSIS_VESSELS,
        },
    )


@login_required
def ecg_detail(request: HttpRequest, slug: str, ecg_id: int) -> HttpResponse:
    """One ECG as a 12-lead plot with a time scale in seconds and an amplitude scale in mV."""
    project = project_for(request, slug)
    if project.viewer_role != Role.LEAD:
        return _leads_only(request, project)
    ecg = project.ecgs.select_related("patient").filter(pk=ecg_id).first()
    if ecg is None:
        raise Http404("No such ECG in this project.")
    context = {"project": project, "ecg": ecg, "duration_s": ecg_duration_s(ecg)}
    return render(request, "frontend/ecg.html", context)
