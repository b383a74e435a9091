"""Dataset exports of a project (leads only): start one, list them with their progress, download a finished one."""

from __future__ import annotations

from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from annotation.api.permissions import project_for
from annotation.models import Job, JobKind, JobStatus
from annotation.services.exports import export_archive, export_request


class ExportSerializer(serializers.ModelSerializer):
    """An export job: where it stands and, once finished, its archive's size, checksum, counts and download link."""

    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    bytes = serializers.SerializerMethodField()
    filename = serializers.SerializerMethodField()
    sha256 = serializers.SerializerMethodField()
    counts = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "status",
            "progress",
            "detail",
            "error",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
            "bytes",
            "filename",
            "sha256",
            "counts",
            "download_url",
        ]
        read_only_fields = fields

    def _result(self, job: Job) -> dict:
        return job.result if job.status == JobStatus.SUCCEEDED and isinstance(job.result, dict) else {}

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_bytes(self, job: Job) -> int | None:
        return self._result(job).get("bytes")

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_filename(self, job: Job) -> str | None:
        return self._result(job).get("filename")

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_sha256(self, job: Job) -> str | None:
        return self._result(job).get("sha256")

    @extend_schema_field(serializers.DictField(allow_null=True))
    def get_counts(self, job: Job) -> dict | None:
        return self._result(job).get("counts")

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_download_url(self, job: Job) -> str | None:
        if not self._result(job) or job.project is None:
            return None
        return reverse("api:export-download", args=[job.project.slug, job.pk])


class ExportViewSet(viewsets.GenericViewSet):
    """Versioned dataset exports: labels, history, splits, pseudo-labels and each task's files in one zip.

    Starting one queues an export job (202); the import worker writes the archive, reporting its progress here and
    as live job events. A finished export is downloaded from `download/`. One export runs at a time per project.
    """

    lookup_value_converter = "int"
    serializer_class = ExportSerializer

    def _exports(self, project):
        return Job.objects.filter(project=project, kind=JobKind.EXPORT).select_related("project", "created_by")

    @extend_schema(responses=ExportSerializer(many=True))
    def list(self, request: Request, project_slug: str) -> Response:
        """The project's exports, newest first."""
        project = project_for(request, project_slug, lead=True)
        page = self.paginate_queryset(self._exports(project).order_by("-created_at", "-pk"))
        return self.get_paginated_response(ExportSerializer(page, many=True).data)

    def retrieve(self, request: Request, project_slug: str, pk: int) -> Response:
        """One export: where it stands and, once finished, its archive."""
        project = project_for(request, project_slug, lead=True)
        job = get_object_or_404(self._exports(project), pk=pk)
        return Response(ExportSerializer(job).data)

    @extend_schema(request=None, responses={202: ExportSerializer, 409: dict})
    def create(self, request: Request, project_slug: str) -> Response:
        """Queue a dataset export of the project (409 while one is queued or running)."""
        project = project_for(request, project_slug, lead=True)
        job = export_request(project=project, by=request.user)
        return Response(ExportSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="the export archive"),
            404: OpenApiResponse(description="no such export, or it has no archive (queued, running or failed)"),
        }
    )
    @action(detail=True, methods=["get"])
    def download(self, request: Request, project_slug: str, pk: int) -> FileResponse:
        """The finished export's zip archive, streamed."""
        project = project_for(request, project_slug, lead=True)
        job = get_object_or_404(self._exports(project), pk=pk)
        path = export_archive(job)
        if path is None:
            raise NotFound(f"export #{job.pk} has no archive to download: it is {job.status}")
        filename = job.result.get("filename") or f"{project.slug}-dataset-{job.pk}.zip"
        return FileResponse(path.open("rb"), as_attachment=True, filename=filename, content_type="application/zip")
