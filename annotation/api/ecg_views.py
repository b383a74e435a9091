"""A project's 12-lead ECGs for its leads: the list, one ECG, its signal for the plot, and the ECG ↔ stenosis pairs.

Annotators are refused (403: the pairs carry splits and report values), strangers see 404. ECGs are imported like
any DICOM file (upload, `import_dicom`, DICOMweb); see `annotation.ingest.ecg`.
"""

from __future__ import annotations

from django.http import Http404, HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.permissions import project_for
from annotation.models import Ecg, Role
from annotation.selectors import project_role
from annotation.services.ecg import (
    MAX_WINDOW_SECONDS,
    EcgFileUnreadable,
    EcgInputError,
    ecg_duration_s,
    ecg_pairs_export,
    ecg_signal,
)

NO_ECG = "No such ECG."


class EcgSerializer(serializers.ModelSerializer):
    """One stored ECG: its pseudonymous patient, when it was recorded (date-shifted), its leads and length."""

    patient = serializers.CharField(source="patient.pseudonym", read_only=True)
    duration_s = serializers.SerializerMethodField()

    class Meta:
        model = Ecg
        fields = [
            "id",
            "patient",
            "acquired_at",
            "leads",
            "sampling_frequency",
            "sample_count",
            "duration_s",
            "sop_instance_uid",
            "sop_class_uid",
            "file_size",
            "created_at",
        ]
        read_only_fields = fields

    def get_duration_s(self, ecg: Ecg) -> float:
        return ecg_duration_s(ecg)


class EcgSignalQuerySerializer(serializers.Serializer):
    start = serializers.FloatField(required=False, default=0.0, min_value=0.0, help_text="seconds from the start")
    seconds = serializers.FloatField(
        required=False,
        min_value=0.001,
        max_value=MAX_WINDOW_SECONDS,
        help_text=f"how long a stretch (default: the rest of the recording, at most {MAX_WINDOW_SECONDS:g} s)",
    )


class EcgSignalSerializer(serializers.Serializer):
    leads = serializers.ListField(child=serializers.CharField(), help_text="lead names in channel order")
    units = serializers.ListField(child=serializers.CharField(), help_text="each lead's unit (UCUM, e.g. uV)")
    sampling_frequency = serializers.FloatField(help_text="samples per second")
    total_samples = serializers.IntegerField(help_text="samples per lead in the whole recording")
    duration_s = serializers.FloatField(help_text="the whole recording, in seconds")
    start_sample = serializers.IntegerField(help_text="the index of the first sample returned")
    samples = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField()),
        help_text="per lead (in `leads` order), the samples of the window in the lead's unit",
    )


def _ecg_for_lead(request: Request, pk: int) -> Ecg:
    """Return the ECG if the user leads its project (403 for its annotators, 404 for everyone else)."""
    ecg = Ecg.objects.select_related("project", "patient").filter(pk=pk).first()
    role = project_role(ecg.project, request.user) if ecg is not None else None
    if ecg is None or role is None:
        raise Http404(NO_ECG)
    if role != Role.LEAD:
        raise PermissionDenied("Only the project's leads can see its ECGs.")
    return ecg


class ProjectEcgsView(generics.ListAPIView):
    """GET /api/projects/<slug>/ecgs/ — the project's ECGs by patient and recording time (leads)."""

    serializer_class = EcgSerializer

    def get_queryset(self):
        project = project_for(self.request, self.kwargs["project_slug"], lead=True)
        return Ecg.objects.filter(project=project).select_related("patient").order_by("patient__pseudonym", "id")


class EcgDetailView(APIView):
    """GET /api/ecgs/<id>/ — one ECG (leads of its project)."""

    @extend_schema(responses=EcgSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(EcgSerializer(_ecg_for_lead(request, pk)).data)


class EcgSignalView(APIView):
    """GET /api/ecgs/<id>/signal/ — the 12-lead group's samples, per lead, in the channels' units."""

    @extend_schema(parameters=[EcgSignalQuerySerializer], responses={200: EcgSignalSerializer, 400: dict, 409: dict})
    def get(self, request: Request, pk: int) -> Response:
        """A window from `start` for `seconds`: the whole of a usual 10 s ECG by default (at most 60 s a call)."""
        ecg = _ecg_for_lead(request, pk)
        query = EcgSignalQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        try:
            signal = ecg_signal(ecg=ecg, **query.validated_data)
        except EcgInputError as exc:
            return Response({"detail": str(exc), "field": exc.field}, status=status.HTTP_400_BAD_REQUEST)
        except EcgFileUnreadable as exc:
            return Response({"detail": f"{exc}."}, status=status.HTTP_409_CONFLICT)
        data = {**signal.__dict__, "duration_s": signal.duration_s}
        return Response(EcgSignalSerializer(data).data)


class EcgPairsView(APIView):
    """GET /api/projects/<slug>/ecgs/pairs.csv — ECG ↔ per-vessel maximum stenosis pairs at the paper's three
    thresholds, with each patient's split (leads)."""

    @extend_schema(responses={(200, "text/csv"): str})
    def get(self, request: Request, project_slug: str) -> HttpResponse:
        """One row per (ECG, vessel) of every ECG whose patient has a current report; see the README's "ECGs"."""
        project = project_for(request, project_slug, lead=True)
        response = HttpResponse(ecg_pairs_export(project=project), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{project.slug}-ecg-pairs.csv"'
        return response
