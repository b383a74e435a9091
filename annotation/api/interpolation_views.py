"""The project's cine frame interpolation (leads): queue a training job, read the trained networks' evaluations.

GET and POST /api/projects/<slug>/interpolation/. Annotators are refused (403), strangers see 404. Too few runs or
a bad parameter is a 400 naming the field; a second job while one is queued or running is a 409.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.permissions import project_for
from annotation.api.serializers import JobSerializer
from annotation.models import InterpolationModel
from annotation.services.interpolation import (
    interpolation_job_active,
    interpolation_run_counts,
    interpolation_train_request,
)

MODELS_SHOWN = 20


class InterpolationTrainSerializer(serializers.Serializer):
    steps = serializers.IntegerField(required=False, min_value=1, max_value=1_000_000)
    size = serializers.IntegerField(required=False, min_value=32, max_value=1024)


class InterpolationModelSerializer(serializers.ModelSerializer):
    class Meta:
        model = InterpolationModel
        fields = ["id", "job", "created_at", "architecture", "metrics"]
        read_only_fields = fields


class InterpolationView(APIView):
    """GET, POST /api/projects/<slug>/interpolation/ — frame-interpolation networks of the project (leads)."""

    @extend_schema(responses=dict)
    def get(self, request: Request, project_slug: str) -> Response:
        """The usable runs, the queued or running job, and the trained networks (newest first) with their metrics."""
        project = project_for(request, project_slug, lead=True)
        active = interpolation_job_active(project)
        rows = InterpolationModel.objects.filter(project=project).order_by("-created_at", "-pk")[:MODELS_SHOWN]
        return Response(
            {
                "runs": interpolation_run_counts(project),
                "job": JobSerializer(active).data if active else None,
                "models": InterpolationModelSerializer(rows, many=True).data,
            }
        )

    @extend_schema(request=InterpolationTrainSerializer, responses={202: JobSerializer, 400: dict, 409: dict})
    def post(self, request: Request, project_slug: str) -> Response:
        """Queue a training job on the project's runs (optional `steps`, `size`)."""
        project = project_for(request, project_slug, lead=True)
        data = InterpolationTrainSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = interpolation_train_request(project=project, user=request.user, params=dict(data.validated_data))
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
