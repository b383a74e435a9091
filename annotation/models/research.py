"""What the side studies need beside the labelling tasks: angiography lesion reports (linked to the runs that
show each lesion's artery), 12-lead ECGs stored with the patient, and cine frame-interpolation models."""

from django.conf import settings
from django.db import models

from annotation.models.dicom import Patient, Study
from annotation.models.projects import Project


class Dominance(models.TextChoices):
    """Which artery gives the PDA and PLA (segments 4 and 16): decides which runs show lesions there."""

    UNKNOWN = "", "Not recorded"
    RIGHT = "right", "Right dominant (PDA/PLA from the RCA)"
    LEFT = "left", "Left dominant (PDA/PLA from the LCX)"
    CODOMINANT = "codominant", "Codominant (both)"


class ExamReport(models.Model):
    """One angiography exam's report: the lesions it lists (by 16-segment number) and the recorded dominance.

    Reports name the exam only; its runs are the cine items of `study`. A report imported again replaces the
    lesions of the one before (the old rows are kept as `superseded`, never deleted).
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="exam_reports")
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="reports")
    dominance = models.CharField(max_length=16, choices=Dominance.choices, default="", blank=True)
    source_name = models.CharField(max_length=255, blank=True, help_text="The CSV file the report came from.")
    imported_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    imported_at = models.DateTimeField(auto_now_add=True)
    superseded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["study", "-imported_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["study"], condition=models.Q(superseded_at__isnull=True), name="exam_report_one_current"
            )
        ]

    def __str__(self) -> str:
        return f"report {self.pk} of study {self.study_id}"


class Lesion(models.Model):
    """One reported lesion: the coronary segment (1–16) and the diameter stenosis in percent."""

    report = models.ForeignKey(ExamReport, on_delete=models.CASCADE, related_name="lesions")
    segment = models.PositiveSmallIntegerField()
    stenosis_percent = models.PositiveSmallIntegerField()
    row_number = models.PositiveIntegerField(help_text="The lesion's line in the imported CSV (1 = header).")
    note = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["report", "segment", "row_number"]
        constraints = [
            models.CheckConstraint(condition=models.Q(segment__gte=1, segment__lte=16), name="lesion_segment_1_16"),
            models.CheckConstraint(condition=models.Q(stenosis_percent__lte=100), name="lesion_stenosis_le_100"),
        ]

    def __str__(self) -> str:
        return f"segment {self.segment}: {self.stenosis_percent} %"


class Ecg(models.Model):
    """One de-identified 12-lead ECG (a DICOM waveform file), stored with its pseudonymous patient."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="ecgs")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="ecgs")
    sop_instance_uid = models.CharField(max_length=64, help_text="Remapped, like every stored UID.")
    sop_class_uid = models.CharField(max_length=64)
    # AcquisitionDateTime (or the study's date) moved back by the patient's date shift, like study dates.
    acquired_at = models.DateTimeField(null=True, blank=True)
    sampling_frequency = models.FloatField(help_text="Samples per second of the 12-lead group.")
    sample_count = models.PositiveIntegerField()
    leads = models.JSONField(default=list, help_text="Lead names in channel order, e.g. ['I', 'II', …].")
    file_path = models.CharField(max_length=512, help_text="De-identified DICOM, relative to MEDIA_ROOT.")
    file_size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["patient", "acquired_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "sop_instance_uid"], name="ecg_unique_uid_per_project")
        ]

    def __str__(self) -> str:
        return self.sop_instance_uid


class InterpolationModel(models.Model):
    """A cine frame-interpolation network trained on a project's runs (self-supervised: no labels needed).

    `metrics` holds the held-out evaluation (PSNR / SSIM per run and overall, with linear blending and frame
    repetition on the same frames); the newest succeeded one drives the player's smooth playback and can
    initialise the vessel-type video model.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="interpolation_models")
    job = models.OneToOneField(
        "annotation.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="interpolation_model"
    )
    weights_path = models.CharField(max_length=512, help_text="Relative to MEDIA_ROOT.")
    architecture = models.JSONField(default=dict, blank=True, help_text="Constructor arguments of the network.")
    metrics = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"interpolation {self.pk} of project {self.project_id}"
