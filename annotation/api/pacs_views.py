"""The project's DICOMweb server (PACS) for its leads: set it, check it, search its studies, import some.

Annotators are refused (403), strangers see 404. A server problem (unreachable, refused credentials, not a
DICOMweb service) is a 502 whose detail names it; no server configured, or a password stored under another
LUMEN_CREDENTIALS_KEY, is a 409. Search results name patients: they go to the lead's browser, never to a cache or
a log. The import job is followed like an upload's, at `…/imports/<job>/` and `…/imports/<job>/files/`.
"""

from __future__ import annotations

from dataclasses import asdict

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api import pacs_serializers as ps
from annotation.api.permissions import project_for
from annotation.api.serializers import JobSerializer
from annotation.credentials import CredentialUnreadable
from annotation.ingest.dicomweb import DicomWebConnection, DicomWebError, StudySearch
from annotation.services.dicomweb import (
    DicomWebNotConfigured,
    dicomweb_import_enqueue,
    dicomweb_server_for,
    dicomweb_server_remove,
    dicomweb_server_set,
    dicomweb_setting_of,
)

PROBLEMS = {502: dict, 409: dict}


def _sentence(text: str) -> str:
    return f"{text[:1].upper()}{text[1:]}" + ("" if text.endswith((".", "?", "!")) else ".")


class _PacsView(APIView):
    def handle_exception(self, exc):
        if isinstance(exc, DicomWebError):
            return Response({"detail": _sentence(f"the DICOMweb server: {exc}")}, status=status.HTTP_502_BAD_GATEWAY)
        if isinstance(exc, (DicomWebNotConfigured, CredentialUnreadable)):
            return Response({"detail": _sentence(str(exc))}, status=status.HTTP_409_CONFLICT)
        return super().handle_exception(exc)


def _setting(project) -> dict:
    return ps.DicomWebServerSerializer(asdict(dicomweb_setting_of(project))).data


class DicomWebServerView(_PacsView):
    """GET, PUT, DELETE /api/projects/<slug>/dicomweb/ — the server this project imports from (leads)."""

    @extend_schema(responses=ps.DicomWebServerSerializer)
    def get(self, request: Request, project_slug: str) -> Response:
        """The server: the project's own, else the deployment's (LUMEN_DICOMWEB_URL); whether a password is set."""
        return Response(_setting(project_for(request, project_slug, lead=True)))

    @extend_schema(request=ps.DicomWebServerWriteSerializer, responses={200: ps.DicomWebServerSerializer, 400: dict})
    def put(self, request: Request, project_slug: str) -> Response:
        """Set the project's own server; the password is stored encrypted and never shown again."""
        project = project_for(request, project_slug, lead=True)
        data = ps.DicomWebServerWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        dicomweb_server_set(project=project, by=request.user, **data.validated_data)
        return Response(_setting(project))

    @extend_schema(responses=ps.DicomWebServerSerializer)
    def delete(self, request: Request, project_slug: str) -> Response:
        """Forget the project's own server and its password (the deployment's, if set, applies again)."""
        project = project_for(request, project_slug, lead=True)
        dicomweb_server_remove(project=project)
        return Response(_setting(project))


class DicomWebCheckView(_PacsView):
    """POST /api/projects/<slug>/dicomweb/check/ — try the server with a one-study search."""

    @extend_schema(request=None, responses={200: ps.DicomWebCheckSerializer, **PROBLEMS})
    def post(self, request: Request, project_slug: str) -> Response:
        project = project_for(request, project_slug, lead=True)
        server = dicomweb_server_for(project)
        with DicomWebConnection(server) as connection:
            found = connection.check()
        holds = "it answered a study search" if found else "it answered a study search and shows no study yet"
        return Response({"ok": True, "detail": f"Connected to {server.host}: {holds}."})


class DicomWebStudiesView(_PacsView):
    """GET /api/projects/<slug>/dicomweb/studies/ — a QIDO-RS study search on the server (leads only)."""

    @extend_schema(
        parameters=[ps.StudySearchSerializer], responses={200: ps.StudyPageSerializer, 400: dict, **PROBLEMS}
    )
    def get(self, request: Request, project_slug: str) -> Response:
        """One page of studies matching every filter given (patient, study dates, modality, accession, description)."""
        project = project_for(request, project_slug, lead=True)
        query = ps.StudySearchSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        search = StudySearch(**query.validated_data)
        with DicomWebConnection(dicomweb_server_for(project)) as connection:
            rows, more = connection.studies(search)
        page = {"results": [asdict(row) for row in rows], "limit": search.limit, "offset": search.offset, "more": more}
        response = Response(ps.StudyPageSerializer(page).data)
        response["Cache-Control"] = "no-store"  # it names patients
        return response


class DicomWebImportView(_PacsView):
    """POST /api/projects/<slug>/dicomweb/imports/ — import studies from the server as an import job (leads)."""

    @extend_schema(request=ps.DicomWebImportSerializer, responses={202: JobSerializer, 400: dict, 409: dict})
    def post(self, request: Request, project_slug: str) -> Response:
        """Queue the import at once (202); the import worker retrieves each instance and imports it as an upload's
        file. Follow it at `imports/<job>/` and read each file's outcome from `imports/<job>/files/`."""
        project = project_for(request, project_slug, lead=True)
        data = ps.DicomWebImportSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = dicomweb_import_enqueue(project=project, study_uids=data.validated_data["studies"], user=request.user)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
