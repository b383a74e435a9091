"""Label Studio from the project page (leads only): its server and token, push, pull, and JSON task files; and the
signed image links Label Studio's annotators load without a Lumen login."""

from __future__ import annotations

import json
import mimetypes

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.permissions import project_for
from annotation.models import Item
from annotation.selectors import label_studio_items
from annotation.services.label_studio import (
    ImageLinkExpired,
    ImageLinkInvalid,
    LabelStudioInputError,
    LabelStudioNotReady,
    LabelStudioUnavailable,
    image_link_read,
    label_studio_connect,
    label_studio_disconnect,
    label_studio_export,
    label_studio_import,
    label_studio_pull,
    label_studio_push,
    label_studio_server,
)

ERRORS = {400: dict, 409: dict, 502: dict}


class ServerWriteSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=500)
    # Write-only: never read back. Empty keeps the stored token.
    token = serializers.CharField(max_length=4000, required=False, allow_blank=True, default="", write_only=True)


class ServerSerializer(serializers.Serializer):
    url = serializers.CharField()
    username = serializers.CharField(help_text="The Label Studio account the token belongs to.")
    has_token = serializers.BooleanField()
    remote_project = serializers.IntegerField(allow_null=True)
    remote_url = serializers.CharField(help_text="The Label Studio project the items were pushed to.")


class PushSerializer(serializers.Serializer):
    remote_project = serializers.IntegerField()
    remote_url = serializers.CharField()
    project_created = serializers.BooleanField()
    tasks_added = serializers.IntegerField()
    tasks_present = serializers.IntegerField()
    predictions_added = serializers.IntegerField()
    links_renewed = serializers.IntegerField()
    items_left_out = serializers.IntegerField(help_text="Excluded items, and items held for burned-in text.")


class RejectedSerializer(serializers.Serializer):
    task = serializers.IntegerField(allow_null=True)
    annotation = serializers.IntegerField(allow_null=True)
    item = serializers.IntegerField(allow_null=True)
    email = serializers.CharField()
    reason = serializers.CharField()


class LabelsSerializer(serializers.Serializer):
    created = serializers.IntegerField(help_text="New label versions (source label_studio).")
    unchanged = serializers.IntegerField(help_text="Annotations equal to their author's current label.")
    rejected = RejectedSerializer(many=True)


class ImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A Label Studio JSON tasks file (a list of tasks).")


def _server_body(project) -> dict:
    server = label_studio_server(project)
    if server is None:
        return {"url": "", "username": "", "has_token": False, "remote_project": None, "remote_url": ""}
    remote = server.remote_project
    return {
        "url": server.url,
        "username": server.username,
        "has_token": bool(server.secret),
        "remote_project": remote,
        "remote_url": f"{server.url}/projects/{remote}/" if remote is not None else "",
    }


def _base_url(request: Request) -> str:
    """Where Label Studio's annotators reach this server: the address the lead used."""
    return request.build_absolute_uri("/")


class LabelStudioView(APIView):
    """Answers the service's errors naming the problem: a bad value 400 (with its field), a project not ready for
    the step 409, a Label Studio that failed 502."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, LabelStudioInputError):
            return Response({"detail": str(exc), "field": exc.field}, status=status.HTTP_400_BAD_REQUEST)
        if isinstance(exc, LabelStudioNotReady):
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        if isinstance(exc, LabelStudioUnavailable):
            return Response({"detail": str(exc)}, status=status.HTTP_502_BAD_GATEWAY)
        return super().handle_exception(exc)


class LabelStudioServerView(LabelStudioView):
    """GET/PUT/DELETE /api/projects/<slug>/label-studio/ — the project's Label Studio server (leads)."""

    @extend_schema(responses=ServerSerializer)
    def get(self, request: Request, project_slug: str) -> Response:
        return Response(_server_body(project_for(request, project_slug, lead=True)))

    @extend_schema(request=ServerWriteSerializer, responses={200: ServerSerializer, **ERRORS})
    def put(self, request: Request, project_slug: str) -> Response:
        """Set the server's URL and an API token (checked against the server before anything is stored)."""
        project = project_for(request, project_slug, lead=True)
        data = ServerWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        label_studio_connect(project=project, by=request.user, **data.validated_data)
        return Response(_server_body(project))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, project_slug: str) -> Response:
        """Forget the server and its token (the Label Studio project stays on the server)."""
        label_studio_disconnect(project=project_for(request, project_slug, lead=True))
        return Response(status=status.HTTP_204_NO_CONTENT)


class LabelStudioPushView(LabelStudioView):
    @extend_schema(request=None, responses={200: PushSerializer, **ERRORS})
    def post(self, request: Request, project_slug: str) -> Response:
        """Push the items Label Studio does not hold yet, with the champion's predictions."""
        project = project_for(request, project_slug, lead=True)
        return Response(label_studio_push(project=project, base_url=_base_url(request)).as_json())


class LabelStudioPullView(LabelStudioView):
    @extend_schema(request=None, responses={200: LabelsSerializer, **ERRORS})
    def post(self, request: Request, project_slug: str) -> Response:
        """Store the annotations made in Label Studio as label versions; each refused one with its reason."""
        project = project_for(request, project_slug, lead=True)
        return Response(label_studio_pull(project=project).as_json())


class LabelStudioExportView(LabelStudioView):
    @extend_schema(responses={(200, "application/json"): dict, 409: dict})
    def get(self, request: Request, project_slug: str) -> HttpResponse:
        """The items with their current labels (and the champion's predictions) as a Label Studio JSON tasks file."""
        project = project_for(request, project_slug, lead=True)
        tasks = label_studio_export(project=project, base_url=_base_url(request))
        response = HttpResponse(json.dumps(tasks), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{project.slug}-label-studio.json"'
        return response


class LabelStudioImportView(LabelStudioView):
    parser_classes = [MultiPartParser]

    @extend_schema(request=ImportSerializer, responses={200: LabelsSerializer, **ERRORS})
    def post(self, request: Request, project_slug: str) -> Response:
        """Store the annotations of a Label Studio JSON tasks file as label versions, as a pull does."""
        project = project_for(request, project_slug, lead=True)
        data = ImportSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            tasks = json.loads(data.validated_data["file"].read())
        except (UnicodeDecodeError, ValueError) as error:
            raise LabelStudioInputError("file", f"is not JSON: {error}") from None
        return Response(label_studio_import(project=project, tasks=tasks).as_json())


@require_GET
def label_studio_image(request: HttpRequest, token: str) -> HttpResponse:
    """One rendered image of an item, for the link Label Studio holds (no login: the link is the permission).

    Served while the link is fresh and the item may still be shown (a lead excluding it, or holding its file for
    burned-in text, stops it).
    """
    try:
        item_id, key = image_link_read(token)
    except ImageLinkExpired:
        return HttpResponse("This image link has expired: push the project to Label Studio again.", status=410)
    except ImageLinkInvalid:
        raise Http404("No such image.") from None
    item = Item.objects.filter(pk=item_id).select_related("project").first()
    if item is not None:  # read again among those Label Studio may show, with what the task reads
        item = label_studio_items(item.project).filter(pk=item_id).first()
    task = item.project.task if item is not None else None
    if item is None or task is None or task.label_studio_config() is None:
        raise Http404("No such image.")
    path = task.label_studio_images(item).get(key)
    if path is None:
        raise Http404("No such image.")
    try:
        body = path.read_bytes()
    except FileNotFoundError:
        raise Http404("The rendered image is missing.") from None
    response = HttpResponse(body, content_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream")
    response["Cache-Control"] = "private, max-age=3600"
    # Label Studio's pages live on another origin; the signed link, not a cookie, is what grants access.
    response["Access-Control-Allow-Origin"] = "*"
    response["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response
