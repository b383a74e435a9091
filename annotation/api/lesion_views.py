"""Angiography lesion reports (leads only): upload a report CSV, list the exams with their lesions and linkage,
read one run's linked lesions, download the run ↔ lesion training pairs. Annotators are refused (403: a lesion's
segment gives the run's vessel type away), strangers see 404."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.pagination import Pagination
from annotation.api.permissions import NO_ITEM, project_for, signed_in
from annotation.lesion_linkage import (
    BASES,
    FLAGS,
    NO_TYPE_REASONS,
    ExamLinkage,
    current_reports,
    exam_linkages,
    item_lesions,
)
from annotation.selectors import items_for
from annotation.services.lesions import (
    REPORT_MAX_BYTES,
    ReportImportError,
    RowError,
    lesion_pairs_export,
    reports_import,
)

# Multipart framing around the file: a body larger than this is refused before it is read.
_BODY_SLACK = 64 * 1024


class ReportUploadSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="the report CSV (columns: see the README, “Lesion reports”)")


class ReportImportResultSerializer(serializers.Serializer):
    source_name = serializers.CharField()
    exams = serializers.IntegerField(help_text="exams given a new current report")
    lesions = serializers.IntegerField()
    exams_without_lesions = serializers.IntegerField(help_text="exams reported with no significant lesion")
    superseded = serializers.IntegerField(help_text="earlier reports of these exams now superseded (kept)")


class RowErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField(allow_null=True, help_text="the CSV row (1 = the header); null: the whole file")
    column = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class ReportRefusedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = RowErrorSerializer(many=True)


class RunTypeSerializer(serializers.Serializer):
    item = serializers.IntegerField(source="item_id")
    title = serializers.CharField()
    split = serializers.CharField()
    excluded = serializers.BooleanField()
    vessel = serializers.CharField(allow_null=True, help_text="LCA, RCA, neither or unusable; null: no usable type")
    basis = serializers.ChoiceField(choices=BASES, help_text="label (a human's), model (the champion's) or none")
    probability = serializers.FloatField(allow_null=True, help_text="the champion's probability of its class")
    reason = serializers.CharField(help_text=f"why there is no usable type: {', '.join(NO_TYPE_REASONS)} (or empty)")


class LesionLinkSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="lesion.pk")
    segment = serializers.IntegerField(source="lesion.segment")
    segment_name = serializers.CharField()
    stenosis_percent = serializers.IntegerField(source="lesion.stenosis_percent")
    note = serializers.CharField(source="lesion.note")
    row_number = serializers.IntegerField(source="lesion.row_number")
    arteries = serializers.ListField(child=serializers.CharField(), help_text="the arteries whose runs show it")
    runs = serializers.ListField(child=serializers.IntegerField(), help_text="ids of the runs it links to")
    problem = serializers.CharField(help_text="dominance_unknown, no_run_of_artery, or empty when linked")


class ReportSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    dominance = serializers.CharField()
    source_name = serializers.CharField()
    imported_by = serializers.CharField(source="imported_by.username", allow_null=True, default=None)
    imported_at = serializers.DateTimeField()


class ExamLinkageSerializer(serializers.Serializer):
    """One exam's current report with its lesions, its runs' vessel types and the linkage (stored UIDs only)."""

    report = ReportSummarySerializer()
    study_instance_uid = serializers.CharField(source="report.study.study_instance_uid")
    patient = serializers.CharField(source="report.study.patient.pseudonym")
    study_date = serializers.DateField(source="report.study.study_date", allow_null=True)
    superseded_reports = serializers.IntegerField(source="report.superseded_reports")
    lesions = LesionLinkSerializer(many=True)
    runs = RunTypeSerializer(many=True)
    flags = serializers.ListField(child=serializers.ChoiceField(choices=FLAGS))
    ambiguous = serializers.BooleanField(help_text="dominance unknown at PDA / PLA, or a lesion no run shows")


class ExamLinkagePageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ExamLinkageSerializer(many=True)


class ItemLesionsSerializer(serializers.Serializer):
    item = serializers.IntegerField()
    report = ReportSummarySerializer(allow_null=True)
    run = RunTypeSerializer(allow_null=True)
    lesions = LesionLinkSerializer(many=True)
    flags = serializers.ListField(child=serializers.ChoiceField(choices=FLAGS))
    ambiguous = serializers.BooleanField()
    explanation = serializers.CharField(help_text="why no lesion links to the run (empty when some do)")


def _refused(errors: list[RowError]) -> Response:
    count = len(errors)
    detail = f"report file refused, nothing imported: {count} problem{'' if count == 1 else 's'}"
    return Response(
        {"detail": detail, "errors": [error.as_json() for error in errors]}, status=status.HTTP_400_BAD_REQUEST
    )


class ProjectReportsView(APIView):
    """GET/POST /api/projects/<slug>/reports/ — the exams with a current lesion report, with their linkage (paged,
    by patient and study date); or import a report CSV (multipart, field `file`): all rows or none."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        parameters=[
            OpenApiParameter("limit", int, description=f"exams per page (1–{Pagination.max_limit})"),
            OpenApiParameter("offset", int, description="exams to skip"),
        ],
        responses=ExamLinkagePageSerializer,
    )
    def get(self, request: Request, project_slug: str) -> Response:
        project = project_for(request, project_slug, lead=True)
        paginator = Pagination()
        page = paginator.paginate_queryset(current_reports(project), request, view=self)
        linkages: list[ExamLinkage] = exam_linkages(project, list(page or []))
        return paginator.get_paginated_response(ExamLinkageSerializer(linkages, many=True).data)

    @extend_schema(
        request={"multipart/form-data": ReportUploadSerializer},
        responses={201: ReportImportResultSerializer, 400: ReportRefusedSerializer, 413: dict},
    )
    def post(self, request: Request, project_slug: str) -> Response:
        project = project_for(request, project_slug, lead=True)
        if int(request.META.get("CONTENT_LENGTH") or 0) > REPORT_MAX_BYTES + _BODY_SLACK:
            return Response(
                {"detail": f"upload too large: a report file may have at most {REPORT_MAX_BYTES:,} bytes"},
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        data = ReportUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        if upload.size > REPORT_MAX_BYTES:
            message = f"the file has {upload.size:,} bytes; a report file may have at most {REPORT_MAX_BYTES:,}"
            return _refused([RowError(None, None, message)])
        try:
            result = reports_import(
                project=project, user=signed_in(request), data=upload.read(), source_name=upload.name or "upload.csv"
            )
        except ReportImportError as error:
            return _refused(error.errors)
        return Response(result.as_json(), status=status.HTTP_201_CREATED)


class ProjectReportPairsView(APIView):
    """GET /api/projects/<slug>/reports/pairs.csv — run ↔ lesion pairs of the unambiguous exams, for training a
    stenosis model (stored, remapped UIDs and pseudonyms only)."""

    @extend_schema(responses={(200, "text/csv"): str})
    def get(self, request: Request, project_slug: str) -> HttpResponse:
        project = project_for(request, project_slug, lead=True)
        response = HttpResponse(lesion_pairs_export(project=project), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{project.slug}-lesion-pairs.csv"'
        return response


class ItemLesionsView(APIView):
    """GET /api/items/<id>/lesions/ — the lesions linked to a cine run, or why none is (leads of its project)."""

    @extend_schema(responses=ItemLesionsSerializer)
    def get(self, request: Request, pk: int) -> Response:
        item = items_for(signed_in(request)).select_related("instance__series").filter(pk=pk).first()
        if item is None:
            raise Http404(NO_ITEM)
        project = project_for(request, item.project.slug, lead=True)
        facts: dict[str, Any] = item_lesions(project, item)
        return Response(ItemLesionsSerializer(facts).data)


__all__ = ["ItemLesionsView", "ProjectReportPairsView", "ProjectReportsView"]
