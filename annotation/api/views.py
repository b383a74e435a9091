"""Thin API views: validate with a serializer, call one service or selector, return."""

from __future__ import annotations

import base64
import mimetypes
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import TooManyFieldsSent, TooManyFilesSent
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError, PermissionDenied, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import selectors, services
from annotation.api import filters
from annotation.api import serializers as s
from annotation.api.filters import after_param, query_int
from annotation.api.permissions import project_for, require_role, signed_in
from annotation.ingest import render
from annotation.ingest.staging import StagedEntry, StagingUploadHandler, display_name
from annotation.ingest.store import media_path
from annotation.models import (
    ImportFile,
    Item,
    ItemKind,
    Job,
    JobKind,
    Label,
    Membership,
    ModelVersion,
    PolarMap,
    Prediction,
    Role,
    TrainingExample,
)
from annotation.services import interpolated_frames, learning
from annotation.services.burned_in import burned_in_decide
from annotation.services.queue import queue_open_count
from annotation.services.spect import polar_map_discard, polar_map_set_phase
from annotation.services.splits import splits_configure

if TYPE_CHECKING:
    from annotation.api.permissions import ProjectWithRole


def _for_user(view, select, model):
    """The rows `select` lets the user see; an empty queryset of `model` while drf-spectacular reads the view to
    describe its filters (there is no user then)."""
    if getattr(view, "swagger_fake_view", False):
        return model.objects.none()
    return select(view.request.user)


class ProjectViewSet(viewsets.GenericViewSet):
    lookup_field = "slug"
    lookup_value_converter = "slug"
    serializer_class = s.ProjectSerializer

    def get_queryset(self):
        return selectors.projects_for(self.request.user)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if self.request.user.is_authenticated:
            context["roles"] = dict(Membership.objects.filter(user=self.request.user).values_list("project_id", "role"))
        return context

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def retrieve(self, request: Request, slug: str) -> Response:
        project = get_object_or_404(self.get_queryset(), slug=slug)
        return Response(self.get_serializer(project).data)

    @extend_schema(request=s.ProjectCreateSerializer, responses={201: s.ProjectSerializer})
    def create(self, request: Request) -> Response:
        if not request.user.has_perm("annotation.add_project"):
            raise PermissionDenied("You may not create projects; ask an administrator.")
        data = s.ProjectCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_create(creator=request.user, **data.validated_data)
        return Response(self.get_serializer(self.get_queryset().get(pk=project.pk)).data, status=201)

    @extend_schema(request=s.ProjectUpdateSerializer, responses={200: s.ProjectSerializer})
    def partial_update(self, request: Request, slug: str) -> Response:
        project = project_for(request, slug, lead=True)
        data = s.ProjectUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.project_update(project=project, **data.validated_data)
        return Response(self.get_serializer(self.get_queryset().get(pk=project.pk)).data)

    @extend_schema(responses=s.PatientMapSerializer(many=True))
    @action(detail=True, methods=["get"])
    def patients(self, request: Request, slug: str) -> Response:
        """The pseudonym map: which pseudonym stands for which original patient (leads only)."""
        project = project_for(request, slug, lead=True)
        page = self.paginate_queryset(selectors.patients_of(project))
        return self.get_paginated_response(s.PatientMapSerializer(page, many=True).data)

    @extend_schema(
        request=None,
        responses=s.NextItemSerializer,
        parameters=[OpenApiParameter("after", int, description="the item you are labelling now (fetch ahead)")],
    )
    @action(detail=True, methods=["post"])
    def next(self, request: Request, slug: str) -> Response:
        """Lease the next item to label (resuming your open lease first); item is null when nothing is left.

        `?after=<item id>`: the item you are labelling now; the answer is the one after it (leased ahead, so the
        browser can load it while you label), never that item again.
        """
        return Response(next_answer(request, project_for(request, slug), after_param(request)))

    @extend_schema(request=s.TrainRequestSerializer, responses={202: s.JobSerializer})
    @action(detail=True, methods=["post"])
    def train(self, request: Request, slug: str) -> Response:
        """Retrain now: queue a training job (leads only; one at a time per project)."""
        project = project_for(request, slug, lead=True)
        data = s.TrainRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = learning.training_request(project=project, by=request.user, **data.validated_data)
        return Response(s.JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=s.SplitsSerializer, responses=dict)
    @action(detail=True, methods=["get", "post"])
    def splits(self, request: Request, slug: str) -> Response:
        """The train / validation / held-out test split by patient; leads set fractions and lock the test set.

        Reading it changes nothing: items imported since the last ranking or training count as unassigned until
        the next one gives them their patient's split.
        """
        project = project_for(request, slug, lead=True)
        if request.method == "POST":
            data = s.SplitsSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            splits_configure(project=project, **data.validated_data)
            project.refresh_from_db()
        return Response(selectors.split_summary(project))

    @extend_schema(responses=s.QueueSerializer)
    @action(detail=True, methods=["get"])
    def queue(self, request: Request, slug: str) -> Response:
        """The queue: how many items are open, and (leads) what ranked it, when, and what waits to be ranked."""
        project = project_for(request, slug)
        body = {"open": queue_open_count(project)}
        if selectors.project_role(project, request.user) == Role.LEAD:
            body.update(s.QueueSerializer(selectors.queue_of(project)).data)
        return Response(body)

    @extend_schema(responses=dict)
    @action(detail=True, methods=["get"])
    def progress(self, request: Request, slug: str) -> Response:
        """Your counts (to do / done / skipped) and your most recent labels, newest first."""
        project = project_for(request, slug)
        recent = selectors.recent_labels_of(project, request.user)
        return Response(
            {
                "progress": selectors.work_progress(project, request.user),
                "recent": s.RecentLabelSerializer(recent, many=True).data,
            }
        )


class MembershipViewSet(viewsets.GenericViewSet):
    serializer_class = s.MembershipSerializer
    lookup_field = "username"
    lookup_value_converter = "str"

    @extend_schema(responses=s.MembershipSerializer(many=True))
    def list(self, request: Request, project_slug: str) -> Response:
        project = project_for(request, project_slug, lead=True)
        members = Membership.objects.filter(project=project).select_related("user").order_by("user__username")
        page = self.paginate_queryset(members)
        return self.get_paginated_response(s.MembershipSerializer(page, many=True).data)

    @extend_schema(request=s.MembershipWriteSerializer, responses={201: s.MembershipSerializer})
    def create(self, request: Request, project_slug: str) -> Response:
        project = project_for(request, project_slug, lead=True)
        data = s.MembershipWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_set(
            project=project, user=data.validated_data["username"], role=data.validated_data["role"]
        )
        return Response(s.MembershipSerializer(membership).data, status=201)

    def destroy(self, request: Request, project_slug: str, username: str) -> Response:
        project = project_for(request, project_slug, lead=True)
        user = get_object_or_404(get_user_model(), username=username)
        services.membership_remove(project=project, user=user)
        return Response(status=204)


class ImportViewSet(viewsets.GenericViewSet):
    """Upload DICOM (many files, folders or zips), or PNG polar maps with a manifest.csv, into a project (leads only).

    The upload is streamed to a staging folder on disk and answered at once with a queued import job (202); the
    import worker processes the files. Follow the job here (`progress`, `detail`) and read each file's outcome as it
    is decided from `files/`.
    """

    lookup_value_converter = "int"
    parser_classes = [MultiPartParser, FormParser]
    serializer_class = s.JobSerializer

    def initialize_request(self, request, *args, **kwargs):
        # Before anything reads the body (authentication may): files go to disk as they arrive, never to memory.
        self.staging = StagingUploadHandler(request) if request.method == "POST" else None
        if self.staging is not None:
            request.upload_handlers = [self.staging]
        return super().initialize_request(request, *args, **kwargs)

    def handle_exception(self, exc):
        # Django's multipart limits are the client's mistake, not a server error: a 400 that says which limit,
        # answered here so that finalize_response still removes what was staged before the limit was reached.
        if isinstance(exc, TooManyFilesSent):
            exc = ParseError(
                f"too many files: one upload takes at most {settings.DATA_UPLOAD_MAX_NUMBER_FILES} "
                "(LUMEN_MAX_UPLOAD_FILES)"
            )
        elif isinstance(exc, TooManyFieldsSent):
            exc = ParseError(
                f"too many form fields (one path per file): at most {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS}"
            )
        return super().handle_exception(exc)

    def finalize_response(self, request, response, *args, **kwargs):
        if self.staging is not None and not getattr(self, "staging_claimed", False):
            self.staging.abort()  # refused or failed: nothing staged is kept
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(responses=s.JobSerializer(many=True))
    def list(self, request: Request, project_slug: str) -> Response:
        project = project_for(request, project_slug, lead=True)
        jobs = Job.objects.filter(project=project, kind=JobKind.IMPORT).order_by("-created_at", "-pk")
        page = self.paginate_queryset(jobs)
        return self.get_paginated_response(s.JobSerializer(page, many=True).data)

    def retrieve(self, request: Request, project_slug: str, pk: int) -> Response:
        project = project_for(request, project_slug, lead=True)
        job = get_object_or_404(Job, project=project, kind=JobKind.IMPORT, pk=pk)
        return Response(s.JobSerializer(job).data)

    @extend_schema(
        parameters=[OpenApiParameter("after", int, description="only files after this position (default: all)")],
        responses=s.ImportFileSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def files(self, request: Request, project_slug: str, pk: int) -> Response:
        """Each file's outcome in upload order, as far as the job has got (at most 1000 per call)."""
        project = project_for(request, project_slug, lead=True)
        job = get_object_or_404(Job, project=project, kind=JobKind.IMPORT, pk=pk)
        after = after_param(request)
        rows = ImportFile.objects.filter(job=job, position__gt=-1 if after is None else after)
        rows = rows.order_by("position")[:1000]
        return Response({"status": job.status, "files": s.ImportFileSerializer(rows, many=True).data})

    @extend_schema(request=s.ImportUploadSerializer, responses={202: s.JobSerializer, 400: dict, 413: dict})
    def create(self, request: Request, project_slug: str) -> Response:
        """Stage the upload and queue its import job; each file is stored or rejected by the worker."""
        project = project_for(request, project_slug, lead=True)
        limit = self.staging.max_bytes
        too_large = Response(
            {"detail": f"upload too large: the limit is {limit} bytes per upload (LUMEN_MAX_UPLOAD_BYTES)"},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
        if int(request.META.get("CONTENT_LENGTH") or 0) > self.staging.max_bytes:
            return too_large
        uploads, paths = request.FILES.getlist("files"), request.data.getlist("paths")
        if self.staging.too_large:  # a body without a length that grew past the limit
            return too_large
        data = s.ImportUploadSerializer(data={"files": uploads, "paths": paths})
        data.is_valid(raise_exception=True)
        files, paths = data.validated_data["files"], data.validated_data.get("paths") or []
        entries = [
            StagedEntry(
                name=display_name(paths[i] if paths else "", upload.name or f"file-{i + 1}"),
                path=str(upload.path.relative_to(settings.MEDIA_ROOT)),
                size=upload.size,
            )
            for i, upload in enumerate(files)
        ]
        job = services.import_enqueue(
            project=project, staged_directory=self.staging.relative_directory, files=entries, user=request.user
        )
        self.staging_claimed = True
        return Response(s.JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ItemViewSet(viewsets.ReadOnlyModelViewSet):
    lookup_value_converter = "int"
    serializer_class = s.ItemSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = filters.ItemFilter

    def get_queryset(self):
        return _for_user(self, selectors.items_for, Item)

    @extend_schema(responses={(200, "image/*"): bytes})
    @action(detail=True, methods=["get"], url_path="frames/<int:n>", url_name="frame")
    def frame(self, request: Request, pk: int, n: int) -> HttpResponse:
        """One rendered frame of the item's run or pullback (8-bit web image, cached by the browser)."""
        instance = _frames_of(request, pk)
        if n >= instance.number_of_frames:
            raise Http404(f"frame {n} is past the last frame ({instance.number_of_frames - 1})")
        return _image_response(render.frame_path(media_path(instance.frames_dir), n, instance.frame_format))

    @extend_schema(
        parameters=[OpenApiParameter("start", int, description="first frame (default 0)")],
        responses={(200, "application/octet-stream"): bytes},
    )
    @action(detail=True, methods=["get"], url_path="frames/pack", url_name="frame-pack")
    def frame_pack(self, request: Request, pk: str) -> HttpResponse:
        """Frames start…last in one response, back to back; X-Frame-Sizes lists each frame's byte length.

        One request instead of one per frame: the cine player decodes each frame as soon as its bytes arrive.
        """
        instance = _frames_of(request, int(pk))
        count = instance.number_of_frames
        start = query_int(request, "start", lowest=0, highest=count - 1, default=0)
        directory = media_path(instance.frames_dir)
        paths = [render.frame_path(directory, n, instance.frame_format) for n in range(start, count)]
        if not all(path.exists() for path in paths):
            raise Http404("Rendered frames are missing from the frame cache.")
        frames = [path.read_bytes() for path in paths]
        # Django's ASGI handler sends the body in 64 KiB chunks, so the browser still sees it arrive progressively.
        response = HttpResponse(b"".join(frames), content_type="application/octet-stream")
        response["X-Frame-Sizes"] = ",".join(str(len(frame)) for frame in frames)
        response["X-Frame-Format"] = instance.frame_format
        response["Cache-Control"] = "private, max-age=86400, immutable"
        return response

    @extend_schema(responses={(200, "image/*"): bytes})
    @action(
        detail=True,
        methods=["get"],
        url_path="frames/<int:n>/interpolated/<int:model>",
        url_name="frame-interpolated",
    )
    def frame_interpolated(self, request: Request, pk: int, n: int, model: int) -> HttpResponse:
        """The synthetic frame half-way between frames n and n + 1, computed by frame-interpolation model `model`
        of the item's project (not acquired data: the X-Lumen-Synthetic header says so)."""
        instance = _frames_of(request, pk)
        try:
            network = interpolated_frames.interpolation_model_for_item(item_id=pk, model_id=model)
            body = interpolated_frames.interpolated_frame(instance=instance, model=network, n=n)
        except interpolated_frames.InterpolationUnavailable as error:
            raise Http404(str(error)) from None
        response = HttpResponse(body, content_type=f"image/{instance.frame_format}")
        # The model id in the URL pins the bytes, like a real frame's (see _image_response).
        response["Cache-Control"] = "private, max-age=86400, immutable"
        response["X-Lumen-Synthetic"] = "interpolated"
        response["X-Lumen-Interpolated-Between"] = f"{n},{n + 1}"
        response["X-Lumen-Interpolation-Model"] = str(model)
        return response

    @extend_schema(responses={(200, "image/png"): bytes})
    @action(detail=True, methods=["get"], url_path="polar/<str:phase>", url_name="polar-map")
    def polar(self, request: Request, pk: str, phase: str) -> HttpResponse:
        """The item's rest or stress polar map, normalised to its maximum (PNG)."""
        if phase not in ("rest", "stress"):
            raise Http404("A polar map is 'rest' or 'stress'.")
        item = self.get_object()
        if item.kind != ItemKind.SPECT_PAIR:
            raise Http404("This item has no polar maps.")
        polar_map = item.spect.rest if phase == "rest" else item.spect.stress
        return _image_response(media_path(polar_map.image_path))

    @extend_schema(responses=dict)
    @action(detail=True, methods=["get"])
    def workspace(self, request: Request, pk: str) -> Response:
        """Everything the labeling tool needs: the item, your label and draft, and task extras."""
        # With the user's role in its project (selectors.items_for) and what the workspace shows, in one query.
        item: Any = selectors.workspace_item(request.user, int(pk))
        if item is None:
            raise Http404("No item here.")
        self.check_object_permissions(request, item)
        return Response(workspace_body(item, request, item.viewer_role))

    @extend_schema(request=s.DraftWriteSerializer, responses={200: s.DraftSerializer, 204: None})
    @action(detail=True, methods=["put", "delete"])
    def draft(self, request: Request, pk: str) -> Response:
        """Autosave your unsubmitted work on the item (PUT), or throw it away (DELETE)."""
        item = self.get_object()
        require_role(item.project, request)
        if request.method == "DELETE":
            services.draft_discard(item=item, author=request.user)
            return Response(status=204)
        data = s.DraftWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        draft = services.draft_save(item=item, author=request.user, **data.validated_data)
        return Response(s.DraftSerializer(draft).data)

    @extend_schema(request=s.SkipSerializer, responses=dict)
    @action(detail=True, methods=["post"])
    def skip(self, request: Request, pk: str) -> Response:
        """Skip the item with a reason; it is not offered to you again."""
        item = self.get_object()
        require_role(item.project, request)
        data = s.SkipSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assignment = services.item_skip(item=item, annotator=request.user, reason=data.validated_data["reason"])
        return Response({"item": item.pk, "state": assignment.state, "reason": assignment.skip_reason})

    @extend_schema(request=None, responses=dict)
    @action(detail=True, methods=["post"])
    def release(self, request: Request, pk: str) -> Response:
        """Give your lease of the item back to the queue without labelling it."""
        item = self.get_object()
        require_role(item.project, request)
        return Response({"item": item.pk, "released": services.assignment_release(item=item, annotator=request.user)})

    @extend_schema(request=s.GoldSerializer, responses=s.GoldSerializer)
    @action(detail=True, methods=["post"])
    def gold(self, request: Request, pk: str) -> Response:
        """Mark the item as gold (a lead's label mixed into annotators' work to measure them), or unmark it."""
        item = self.get_object()
        require_role(item.project, request, lead=True)
        data = s.GoldSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        item = services.item_gold_set(item=item, by=request.user, gold=data.validated_data["is_gold"])
        return Response({"item": item.pk, "is_gold": item.is_gold})

    @extend_schema(request=s.BurnedInDecisionSerializer, responses=s.BurnedInSerializer)
    @action(detail=True, methods=["post"], url_path="burned-in", url_name="burned-in")
    def burned_in(self, request: Request, pk: str) -> Response:
        """Decide on the burned-in text of the item's file (leads): exclude it, mask the text, or release it.

        Applies to every item of the file (all frames of a pullback).
        """
        item = self.get_object()
        require_role(item.project, request, lead=True)
        data = s.BurnedInDecisionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        instance = burned_in_decide(
            item=item,
            by=request.user,
            decision=data.validated_data["decision"],
            regions=data.validated_data.get("regions"),
        )
        return Response(s.BurnedInSerializer(instance).data)

    @extend_schema(responses={(200, "image/png"): bytes})
    @action(detail=True, methods=["get"])
    def lmode(self, request: Request, pk: str) -> HttpResponse:
        """The pullback's longitudinal view: the centre row of every frame, one column per frame (PNG)."""
        item = self.get_object()
        if item.kind != ItemKind.OCT_FRAME:
            raise Http404("Only pullback frames have a longitudinal view.")
        return _image_response(media_path(item.instance.frames_dir) / render.LMODE_NAME)

    @extend_schema(request=s.IcaReferenceWriteSerializer, responses={201: s.IcaReferenceSerializer})
    @action(detail=True, methods=["post"])
    def ica(self, request: Request, pk: str) -> Response:
        """Enter the angiography reference (% stenosis per vessel) of a SPECT item (leads only)."""
        item = self.get_object()
        require_role(item.project, request, lead=True)
        data = s.IcaReferenceWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ica = services.ica_reference_add(item=item, entered_by=request.user, stenosis=dict(data.validated_data))
        return Response(s.IcaReferenceSerializer(ica).data, status=201)


def _frames_of(request: Request, item_id: int):
    instance = selectors.frames_of(request.user, item_id)
    if instance is None:  # an item the user cannot see reads the same as one without frames
        raise Http404("No item with frames here.")
    return instance


def _image_response(path) -> HttpResponse:
    try:
        # One body: under ASGI a FileResponse (a sync iterator) is read whole anyway, in one more thread hop.
        body = path.read_bytes()
    except FileNotFoundError:
        raise Http404("The rendered image is missing from the frame cache.") from None
    response = HttpResponse(body, content_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream")
    # Stored under a fresh token per import, the bytes never change: let the browser keep them.
    response["Cache-Control"] = "private, max-age=86400, immutable"
    return response


class LabelViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    lookup_value_converter = "int"
    serializer_class = s.LabelSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = filters.LabelFilter

    def get_queryset(self):
        return _for_user(self, selectors.labels_for, Label)

    @extend_schema(request=s.LabelSubmitSerializer, responses={201: s.LabelSerializer, 409: dict})
    def create(self, request: Request) -> Response:
        """Submit a label; it becomes the next version. A stale base_version answers 409."""
        data = s.LabelSubmitSerializer(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        item = data.validated_data["item"]  # one the user may label: a member of its project
        label = services.label_submit(
            item=item,
            author=request.user,
            payload=data.validated_data["payload"],
            base_version=data.validated_data["base_version"],
            time_spent_ms=data.validated_data.get("time_spent_ms"),
        )
        return Response(s.LabelSerializer(label).data, status=201)


class PredictionViewSet(viewsets.ReadOnlyModelViewSet):
    lookup_value_converter = "int"
    serializer_class = s.PredictionSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = filters.PredictionFilter

    def get_queryset(self):
        return _for_user(self, selectors.predictions_for, Prediction)


class PolarMapViewSet(mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    """The lead's SPECT pairing list: polar maps of the projects you lead, their phase and their pair."""

    lookup_value_converter = "int"
    serializer_class = s.PolarMapSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = filters.PolarMapFilter

    def get_queryset(self):
        return _for_user(self, selectors.polar_maps_for, PolarMap)

    @extend_schema(responses={(200, "image/png"): bytes})
    @action(detail=True, methods=["get"])
    def image(self, request: Request, pk: str) -> HttpResponse:
        """The normalised map as stored (8-bit PNG)."""
        return _image_response(media_path(self.get_object().image_path))

    @extend_schema(request=s.PolarMapPhaseSerializer, responses=s.PolarMapSerializer)
    @action(detail=True, methods=["post"])
    def phase(self, request: Request, pk: str) -> Response:
        """Set the phase of a map its file did not state (or correct it while unpaired); pairs it when it can."""
        data = s.PolarMapPhaseSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        polar_map_set_phase(polar=self.get_object(), by=request.user, phase=data.validated_data["phase"])
        return Response(s.PolarMapSerializer(self.get_queryset().get(pk=pk)).data)

    def perform_destroy(self, instance: PolarMap) -> None:
        """Discard an unpaired map that is not a polar map (its file goes with its last map)."""
        polar_map_discard(polar=instance, by=self.request.user)


class ModelVersionViewSet(viewsets.ReadOnlyModelViewSet):
    lookup_value_converter = "int"
    serializer_class = s.ModelVersionSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = filters.ModelVersionFilter

    def get_queryset(self):
        versions = _for_user(self, selectors.model_versions_for, ModelVersion)
        return versions.annotate(training_set_size=Count("training_examples"))

    @extend_schema(request=None, responses={202: s.JobSerializer})
    @action(detail=True, methods=["post"])
    def score(self, request: Request, pk: str) -> Response:
        """Queue a scoring job of the project's unlabelled items with this version (leads only)."""
        version = self.get_object()
        job = learning.scoring_request(version=version, by=request.user)
        return Response(s.JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[OpenApiParameter("split", str, enum=["train", "validation", "test"])],
        responses=s.TrainingExampleSerializer(many=True),
    )
    @action(detail=True, methods=["get"], url_path="training-set")
    def training_set(self, request: Request, pk: str) -> Response:
        """The exact examples the version was trained and evaluated on: item, split, label version or pseudo-label."""
        version = self.get_object()
        rows = TrainingExample.objects.filter(model_version=version).select_related("label").order_by("item_id", "pk")
        rows = filters.TrainingExampleFilter(request.query_params, rows, request=request)
        if not rows.is_valid():
            raise ValidationError(rows.errors)
        page = self.paginate_queryset(rows.qs)
        return self.get_paginated_response(s.TrainingExampleSerializer(page, many=True).data)


class JobViewSet(viewsets.ReadOnlyModelViewSet):
    lookup_value_converter = "int"
    serializer_class = s.JobSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = filters.JobFilter

    def get_queryset(self):
        return _for_user(self, selectors.jobs_for, Job)


class MeView(APIView):
    """Who am I, and what may I do where."""

    @extend_schema(responses=dict)
    def get(self, request: Request) -> Response:
        roles = Membership.objects.filter(user=request.user).values_list("project__slug", "role")
        return Response(
            {
                "username": request.user.username,
                "can_create_projects": request.user.has_perm("annotation.add_project"),
                "projects": {slug: role for slug, role in roles},
                "lead_of": sorted(slug for slug, role in roles if role == Role.LEAD),
            }
        )


def _leased_item(lease, project) -> Item:
    """The leased item with what the workspace shows of it, and whether the user left a draft of it, in one query
    (the project is known)."""
    item = selectors.leased_item(lease.item_id, lease.annotator_id, project.pk)
    item.project = project
    return item


def next_answer(request: HttpRequest | Request, project: ProjectWithRole, after: int | None = None) -> dict:
    """Lease the user's next item of `project` (from `project_for`: it carries the caller's role) and return what
    `POST …/next/` answers: the item, its lease, the user's progress and the workspace to draw it (one round trip).
    The workspace page embeds the first answer in its HTML, so the browser asks for nothing before frame 0."""
    user = signed_in(request)
    lease = None if project.archived else services.item_next(project=project, annotator=user, after=after)
    body = {
        "item": lease.item_id if lease else None,
        "workspace_url": reverse("api:item-workspace", args=[lease.item_id]) if lease else None,
        "lease_expires_at": lease.expires_at if lease else None,
        "progress": selectors.work_progress(project, user),
        "workspace": workspace_body(_leased_item(lease, project), request, project.viewer_role, lease=lease)
        if lease
        else None,
    }
    if lease is None:
        body["detail"] = "This project is archived." if project.archived else "Nothing left for you to label here."
    return s.NextItemSerializer(body).data


def _answer_item(answer: dict) -> dict:
    """The item of a `next` answer's workspace ({} when nothing was handed out)."""
    return (answer.get("workspace") or {}).get("item") or {}


def first_images(answer: dict, frame_in_page: bool = False) -> list[tuple[str, str]]:
    """The images the tool draws first for a `next` answer, as (URL, how they are loaded: "image" for an <img>,
    "fetch" for `fetch()`), which the page preloads the same way (frame URLs are immutable).

    A whole cine run's frame 0 is shown by the page itself as an <img> (`first_frame`) that the player then takes
    over; none to load when its bytes are in the page (`frame_in_page`, see `first_frame_inline`). One frame of a
    pullback is fetched by its tool.
    """
    item = _answer_item(answer)
    media = item.get("media") or {}
    if media.get("rest_url"):
        return [(media["rest_url"], "image"), (media["stress_url"], "image")]
    shown = first_frame(answer)
    if shown is not None:
        return [] if frame_in_page else [(shown["url"], "image")]
    if media.get("frame_url_template"):
        return [(media["frame_url_template"].replace("{n}", str(item["frame_index"])), "fetch")]
    return []


def first_frame_inline(request: HttpRequest | Request, answer: dict) -> dict | None:
    """`first_frame(answer)` with its bytes where they are small enough to travel in the label page itself
    (`LUMEN_FIRST_FRAME_INLINE_MAX_BYTES`): `src` is then a data: URL and `bytes` their size; otherwise (or where
    the frame cache has no file) `src` is the frame's URL and `bytes` None.

    In the page, the frame is on screen as soon as the HTML is in, with no request after it: on a busy machine
    that request is the longest wait of a cold opening (benchmarks.cine_open). Read through the same check as
    the frame endpoint (`selectors.frames_of`), so the page shows nothing the frame URL would refuse."""
    shown = first_frame(answer)
    if shown is None:
        return None
    shown = {**shown, "src": shown["url"], "bytes": None}
    instance = selectors.frames_of(signed_in(request), _answer_item(answer)["id"])
    if instance is None:
        return shown
    path = render.frame_path(media_path(instance.frames_dir), 0, instance.frame_format)
    try:
        if path.stat().st_size > settings.LUMEN_FIRST_FRAME_INLINE_MAX_BYTES:
            return shown
        body = path.read_bytes()
    except FileNotFoundError:
        return shown
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return {**shown, "src": f"data:{kind};base64,{base64.b64encode(body).decode('ascii')}", "bytes": len(body)}


def first_frame(answer: dict) -> dict | None:
    """Frame 0 of a `next` answer's cine run as the page shows it before any script runs: its URL and size, or
    None when the item is not a whole run (an OCT frame, SPECT maps)."""
    item = _answer_item(answer)
    media = item.get("media") or {}
    if not media.get("frame_url_template") or item.get("frame_index") is not None:
        return None
    return {"url": media["frame_url_template"].replace("{n}", "0"), "rows": media["rows"], "columns": media["columns"]}


def workspace_body(item: Item, request: HttpRequest | Request, role: str, lease=None) -> dict:
    """Everything the labelling tool needs to draw the item for this user: the workspace and `next` answer it.

    `lease`: the user's open lease of the item when the caller holds it (`next`), else it is looked up.
    """
    # A lease just taken from the queue or the gold items is of an item this user never labelled: no label, and
    # so no review of it, to look up.
    # Where the item's query already said (selectors.with_workspace_state) that the user has no label, draft,
    # review request or lease of it, those are not looked up.
    user = signed_in(request)
    fresh = getattr(lease, "fresh", False)
    label = None if fresh or not getattr(item, "has_label", True) else selectors.current_label(item, user)
    draft = selectors.draft_of(item, user) if getattr(item, "has_draft", True) else None
    if lease is not None:
        lease_expires_at = lease.expires_at
    elif hasattr(item, "lease_expires_at"):
        lease_expires_at = item.lease_expires_at
    else:
        lease = selectors.open_lease(item, user)
        lease_expires_at = lease.expires_at if lease else None
    prediction = selectors.prediction_shown(item)
    review = None if fresh or not getattr(item, "has_review", True) else selectors.open_review(item, user)
    body = {
        "item": s.ItemSerializer(
            item,
            context={"request": request, "lead_projects": {item.project_id} if role == Role.LEAD else set()},
        ).data,
        "task_type": item.project.task_type,
        "project": {"slug": item.project.slug, "name": item.project.name},
        "role": role,
        "label": s.LabelSerializer(label).data if label else None,
        "draft": s.DraftSerializer(draft).data if draft else None,
        "lease_expires_at": lease_expires_at,
        "prediction": s.PredictionSerializer(prediction).data if prediction else None,
        "draft_url": reverse("api:item-draft", args=[item.pk]),
        "labels_url": reverse("api:label-list"),
        "skip_url": reverse("api:item-skip", args=[item.pk]),
        "release_url": reverse("api:item-release", args=[item.pk]),
        # A lead sent this label back: the annotator is asked to look at it again (and may keep it).
        "review": {
            "requested_by": review.request.requested_by.username,
            "requested_at": review.request.created_at,
            "note": review.request.note,
        }
        if review
        else None,
    }
    if item.kind == ItemKind.CINE_RUN:
        # Smooth playback, only where the project has a frame-interpolation model (one query, here rather than in
        # the task's item_media, which every item list row would pay for).
        smooth = interpolated_frames.interpolation_media(item)
        if smooth is not None:
            body["item"]["media"]["interpolation"] = smooth
    if item.kind == ItemKind.OCT_FRAME:
        instance = item.dicom
        spacing = [instance.pixel_spacing_row_mm, instance.pixel_spacing_col_mm]
        body["pullback"] = {
            "instance": instance.pk,
            "frames": instance.number_of_frames,
            "lmode_url": reverse("api:item-lmode", args=[item.pk]),
            "pixel_spacing_mm": spacing if all(spacing) else None,
            "frame_items": selectors.pullback_frames(item, user),
        }
    if item.kind == ItemKind.SPECT_PAIR:
        ica = selectors.latest_ica(item)
        body["ica"] = s.IcaReferenceSerializer(ica).data if ica else None
        body["can_edit_ica"] = role == Role.LEAD
        body["ica_url"] = reverse("api:item-ica", args=[item.pk])
    return body
