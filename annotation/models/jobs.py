"""Background jobs (imports, training, scoring, exports) with status and progress."""

from django.conf import settings
from django.db import models

from annotation.models.projects import Project


class JobKind(models.TextChoices):
    IMPORT = "import", "Import"
    TRAIN = "train", "Train"
    SCORE = "score", "Score"
    EXPORT = "export", "Dataset export"
    INTERPOLATE = "interpolate", "Frame interpolation training"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class Job(models.Model):
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs")
    kind = models.CharField(max_length=16, choices=JobKind.choices)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    progress = models.FloatField(default=0.0, help_text="0 … 1.")
    detail = models.JSONField(default=dict, blank=True, help_text="Live progress: epoch, loss, items scored …")
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    model_version = models.ForeignKey(
        "annotation.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Import jobs: when the uploader's file names were replaced by positions (LUMEN_IMPORT_NAMES_DAYS after the end).
    names_forgotten_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "kind", "created_at"], name="job_pickup")]


class ImportFile(models.Model):
    """One file of an import job and what became of it.

    A stored file's row is written in the transaction that stores it, so after a crash every file is either
    stored with its row or absent without one, and a resumed job skips exactly the files it has rows for.
    `position` is the file's place in the job's (deterministic) order of sources.
    """

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="files")
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=1024, help_text="The file's path inside the upload.")
    outcome = models.CharField(max_length=16)
    reason = models.CharField(max_length=32, blank=True)
    message = models.TextField(blank=True)
    instance = models.ForeignKey(
        "annotation.Instance", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    items_created = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job", "position"]
        constraints = [models.UniqueConstraint(fields=["job", "position"], name="import_file_once")]

    def __str__(self) -> str:
        return f"{self.job_id}:{self.position}"


class LiveEvent(models.Model):
    """One live event of a project, written in the transaction of the change it reports.

    Websocket consumers read the rows after the last one they sent, so an event written by any process (the
    orchestrator, another web worker) reaches every open page, with or without Redis; the channel layer only
    wakes them early. Rows older than an hour are pruned by the orchestrator.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    # Job and model events carry metrics annotators need not see.
    leads_only = models.BooleanField(default=False)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["project", "id"], name="live_event_after")]

    def __str__(self) -> str:
        return f"{self.project_id}:{self.pk}"
