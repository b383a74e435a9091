"""Label-quality API for leads: agreement, annotators, the adjudication queue, model health, CSV exports,
adjudicating an item and sending work back for review. Annotators are refused (403), strangers see 404."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.http import Http404, HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.permissions import NO_ITEM, project_for, require_role
from annotation.models import Item, Membership, Project
from annotation.quality.adjudication import adjudication_cases
from annotation.quality.agreement import annotator_stats, project_agreement
from annotation.quality.health import model_health
from annotation.services.adjudication import adjudication_settle, review_request_create


def _agreement(project: Project) -> dict:
    return project_agreement(project)


def _annotators(project: Project) -> dict:
    return {"annotators": annotator_stats(project)}


def _adjudication(project: Project) -> dict:
    return {"cases": [case.as_json() for case in adjudication_cases(project)]}


REPORTS: dict[str, Callable[[Project], dict]] = {
    "agreement": _agreement,
    "annotators": _annotators,
    "adjudication": _adjudication,
    "health": model_health,
}


class QualityReportView(APIView):
    """GET /api/projects/<slug>/quality/<report>/ — agreement, annotators, adjudication or health (leads)."""

    @extend_schema(responses=dict)
    def get(self, request: Request, project_slug: str, report: str) -> Response:
        project = project_for(request, project_slug, lead=True)
        build = REPORTS.get(report)
        if build is None:
            raise Http404(f"No report {report!r}; reports: {', '.join(REPORTS)}.")
        return Response(build(project))


def _flat(value: Any) -> Any:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (dict, list)) else value


def _rows_agreement_pairs(project: Project) -> list[dict]:
    return project_agreement(project)["pairs"]


def _rows_agreement_frames(project: Project) -> list[dict]:
    return project_agreement(project).get("frames", [])


def _rows_adjudication(project: Project) -> list[dict]:
    return [
        {k: v for k, v in case.as_json().items() if k not in ("labels", "prediction")}
        | {"labels": len(case.labels), "model_version": (case.prediction or {}).get("model_version")}
        for case in adjudication_cases(project)
    ]


def _histogram_rows(histogram: dict) -> list[dict]:
    edges, counts = histogram["bins"], histogram["counts"]
    return [
        {"uncertainty_from": lo, "uncertainty_to": hi, "items": n}
        for lo, hi, n in zip(edges[:-1], edges[1:], counts, strict=True)
    ]


EXPORTS: dict[str, Callable[[Project], Iterable[dict]]] = {
    "agreement_pairs": _rows_agreement_pairs,
    "agreement_frames": _rows_agreement_frames,
    "agreement_over_time": lambda project: project_agreement(project)["over_time"],
    "annotators": annotator_stats,
    "adjudication": _rows_adjudication,
    "model_versions": lambda project: model_health(project)["versions"],
    "learning_curve": lambda project: model_health(project)["learning_curve"],
    "model_vs_human": lambda project: model_health(project)["model_vs_human"],
    "queue_uncertainty": lambda project: _histogram_rows(model_health(project)["queue_uncertainty"]),
}


class QualityExportView(APIView):
    """GET /api/projects/<slug>/quality/export/<table>/ — any dashboard table as CSV (leads)."""

    @extend_schema(responses={(200, "text/csv"): str})
    def get(self, request: Request, project_slug: str, table: str) -> HttpResponse:
        project = project_for(request, project_slug, lead=True)
        rows_for = EXPORTS.get(table)
        if rows_for is None:
            raise Http404(f"No table {table!r}; tables: {', '.join(EXPORTS)}.")
        rows = list(rows_for(project))
        buffer = io.StringIO()
        columns = list(dict.fromkeys(key for row in rows for key in row)) or ["(no rows)"]
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _flat(v) for k, v in row.items()})
        response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{project.slug}-{table}.csv"'
        return response


class AdjudicateSerializer(serializers.Serializer):
    payload = serializers.JSONField()
    reason = serializers.CharField(max_length=32)
    note = serializers.CharField(required=False, allow_blank=True, default="")


class AdjudicateView(APIView):
    """POST /api/items/<id>/adjudicate/ — a lead settles the item's final label (kept in history)."""

    @extend_schema(request=AdjudicateSerializer, responses={201: dict})
    def post(self, request: Request, pk: int) -> Response:
        item = Item.objects.select_related("project").filter(pk=pk).first()
        if item is None:
            raise Http404(NO_ITEM)  # as for an item of a project the user is not in
        require_role(item.project, request, lead=True)
        data = AdjudicateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        decision = adjudication_settle(item=item, lead=request.user, **data.validated_data)
        return Response(
            {
                "adjudication": decision.pk,
                "item": item.pk,
                "label": decision.label_id,
                "version": decision.label.version,
                "reason": decision.reason,
                "considered_labels": decision.considered_labels,
            },
            status=status.HTTP_201_CREATED,
        )


class ReviewRequestSerializer(serializers.Serializer):
    annotator = serializers.CharField(max_length=150)
    limit = serializers.IntegerField(required=False, default=20)
    since = serializers.DateTimeField(required=False, allow_null=True, default=None)
    note = serializers.CharField(required=False, allow_blank=True, default="")


class ReviewRequestView(APIView):
    """POST /api/projects/<slug>/reviews/ — send an annotator's recent labels back to them for review (leads)."""

    @extend_schema(request=ReviewRequestSerializer, responses={201: dict})
    def post(self, request: Request, project_slug: str) -> Response:
        project = project_for(request, project_slug, lead=True)
        data = ReviewRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        username = data.validated_data.pop("annotator")
        annotator = get_user_model().objects.filter(username=username).first()
        if annotator is None or not Membership.objects.filter(project=project, user=annotator).exists():
            return Response(
                {"detail": f"annotator: {username!r} is not a member of this project", "field": "annotator"},
                status=status.HTTP_400_BAD_REQUEST,
            )
        review = review_request_create(
            project=project, annotator=annotator, requested_by=request.user, **data.validated_data
        )
        return Response(
            {"review": review.pk, "annotator": username, "items": list(review.items.values_list("item_id", flat=True))},
            status=status.HTTP_201_CREATED,
        )


__all__ = ["AdjudicateView", "QualityExportView", "QualityReportView", "ReviewRequestView"]
