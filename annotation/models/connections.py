"""External servers a project talks to: a DICOMweb archive (PACS) to import from, a Label Studio to label in."""

from django.conf import settings
from django.db import models

from annotation.models.projects import Project


class ServerKind(models.TextChoices):
    DICOMWEB = "dicomweb", "DICOMweb server (PACS)"
    LABEL_STUDIO = "label_studio", "Label Studio"


class ExternalServer(models.Model):
    """One external server of a project, at most one of each kind; its secret is stored encrypted.

    `secret` is a DICOMweb password or a Label Studio API token, encrypted by annotation.credentials (never
    returned by the API). `remote_project` is the Label Studio project Lumen pushed the items to.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="external_servers")
    kind = models.CharField(max_length=16, choices=ServerKind.choices)
    url = models.URLField(max_length=500)
    username = models.CharField(max_length=200, blank=True)
    secret = models.TextField(blank=True, help_text="Encrypted (annotation.credentials).")
    remote_project = models.PositiveIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "kind"], name="external_server_one_per_kind")]

    def __str__(self) -> str:
        return f"{self.project_id}:{self.kind}"
