"""Pseudonymous patients and the DICOM hierarchy (study / series / instance) as stored after de-identification."""

from django.conf import settings
from django.db import models

from annotation.models.projects import Project


class Patient(models.Model):
    """A pseudonymous patient; the same real patient always gets the same pseudonym."""

    pseudonym = models.CharField(max_length=32, unique=True)
    # Keyed hash of the issuer + original patient ID: finds the patient again without storing the ID in clear here.
    identity_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.pseudonym


class PatientIdentity(models.Model):
    """The original identifiers behind a pseudonym: shown to project leads only, never to annotators or logs."""

    patient = models.OneToOneField(Patient, on_delete=models.CASCADE, related_name="identity")
    original_patient_id = models.CharField(max_length=128, blank=True)
    original_name = models.CharField(max_length=256, blank=True)
    original_birth_date = models.CharField(max_length=16, blank=True)
    issuer = models.CharField(max_length=128, blank=True)

    class Meta:
        verbose_name_plural = "patient identities"


class Study(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="studies")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="studies")
    # Remapped UIDs (deterministic from the original), so re-imports land on the same rows.
    study_instance_uid = models.CharField(max_length=64)
    description = models.CharField(max_length=256, blank=True)
    # StudyDate moved back by the patient's date shift (see annotation.ingest.deid): intervals hold, dates do not.
    study_date = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "studies"
        constraints = [
            models.UniqueConstraint(fields=["project", "study_instance_uid"], name="study_unique_uid_per_project")
        ]


class Series(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    series_instance_uid = models.CharField(max_length=64)
    modality = models.CharField(max_length=16)
    description = models.CharField(max_length=256, blank=True)
    series_number = models.IntegerField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "series"
        constraints = [
            models.UniqueConstraint(fields=["study", "series_instance_uid"], name="series_unique_uid_per_study")
        ]


class BurnedInReview(models.TextChoices):
    """A lead's decision on a file with burned-in text; until it is taken the file's items are held out of labelling."""

    NONE = "", "No burned-in text known"
    PENDING = "pending", "Waiting for a lead"
    EXCLUDED = "excluded", "Excluded from labelling"
    MASKED = "masked", "Text masked in the pixels"
    RELEASED = "released", "Released: nothing identifying"


class Instance(models.Model):
    """One stored, de-identified DICOM file with the attributes the tasks query."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="instances")
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    sop_instance_uid = models.CharField(max_length=64)
    sop_class_uid = models.CharField(max_length=64)
    modality = models.CharField(max_length=16)
    transfer_syntax_uid = models.CharField(max_length=64)
    instance_number = models.IntegerField(null=True, blank=True)
    rows = models.PositiveIntegerField()
    columns = models.PositiveIntegerField()
    number_of_frames = models.PositiveIntegerField(default=1)
    samples_per_pixel = models.PositiveSmallIntegerField(default=1)
    photometric_interpretation = models.CharField(max_length=32)
    # Cine timing: FrameTime (ms between frames) and the rate derived from it
    # (or from CineRate / RecommendedDisplayFrameRate).
    frame_time_ms = models.FloatField(null=True, blank=True)
    frame_rate = models.FloatField(null=True, blank=True)
    # C-arm geometry of XA runs: the vessel-type metadata baseline reads these.
    positioner_primary_angle = models.FloatField(null=True, blank=True)
    positioner_secondary_angle = models.FloatField(null=True, blank=True)
    distance_source_to_detector = models.FloatField(null=True, blank=True)
    distance_source_to_patient = models.FloatField(null=True, blank=True)
    # PixelSpacing (or the IVOCT functional group's) in mm, for measurements in physical units.
    pixel_spacing_row_mm = models.FloatField(null=True, blank=True)
    pixel_spacing_col_mm = models.FloatField(null=True, blank=True)
    series_description = models.CharField(max_length=256, blank=True)
    # Burned-in text: the file's BurnedInAnnotation ("YES" / "NO" / "" when it does not say) and, when the project
    # asks for the check, the boxes [x, y, w, h] where OCR found words in the pixels (null: not checked).
    burned_in_annotation = models.CharField(max_length=3, blank=True)
    text_regions = models.JSONField(null=True, blank=True)
    burned_in_review = models.CharField(max_length=16, choices=BurnedInReview.choices, default="", blank=True)
    burned_in_decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    burned_in_decided_at = models.DateTimeField(null=True, blank=True)
    file_path = models.CharField(max_length=512, help_text="De-identified DICOM, relative to MEDIA_ROOT.")
    file_size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    # Frame cache: frames rendered once as 8-bit web images under frames_dir.
    frames_dir = models.CharField(max_length=512)
    frame_format = models.CharField(max_length=8, default="jpeg")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "sop_instance_uid"], name="instance_unique_uid_per_project")
        ]
        indexes = [models.Index(fields=["project", "modality"])]

    def __str__(self) -> str:
        return self.sop_instance_uid
