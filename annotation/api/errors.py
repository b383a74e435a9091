"""Turn domain errors into clear HTTP answers that name the problem."""

from __future__ import annotations

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from annotation.label_schemas import LabelPayloadError
from annotation.project_settings import SettingsError
from annotation.services import LabelConflict, LastLeadError, WorkspaceInputError
from annotation.services.jobs import JobConflict
from annotation.services.learning import LearningInputError
from annotation.services.splits import SplitLocked


def exception_handler(exc, context):
    if isinstance(exc, LabelPayloadError):
        return Response(
            {"detail": str(exc), "field": f"payload.{exc.field}" if exc.field != "payload" else "payload"},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, SettingsError):
        return Response({"detail": str(exc), "field": f"settings.{exc.field}"}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, LabelConflict):
        current = exc.current
        return Response(
            {
                "detail": f"conflict: {exc}. Reload the label and apply your change again.",
                "current_version": current.version if current else None,
                "current_label": current.pk if current else None,
            },
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, WorkspaceInputError):
        return Response({"detail": str(exc), "field": exc.field}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, LearningInputError):
        return Response({"detail": str(exc), "field": exc.field}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, (JobConflict, SplitLocked)):
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, LastLeadError):
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    return drf_exception_handler(exc, context)
