"""Items — the unit one annotator labels in one go — and the task-specific data hanging off them."""

from django.conf import settings
from django.db import models

from annotation.models.dicom import Instance, Patient, Study
from annotation.models.projects import Project


class ItemKind(models.TextChoices):
    CINE_RUN = "cine_run", "Cine run"
    OCT_FRAME = "oct_frame", "Pullback frame"
    SPECT_PAIR = "spect_pair", "Rest + stress polar maps"


class Split(models.TextChoices):
    UNASSIGNED = "", "Unassigned"
    TRAIN = "train", "Train"
    VALIDATION = "validation", "Validation"
    TEST = "test", "Held-out test"


class Item(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    kind = models.CharField(max_length=16, choices=ItemKind.choices)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="items")
    # The DICOM the item shows: the run itself (cine) or the pullback it is a frame of (OCT); none for PNG SPECT.
    instance = models.ForeignKey(Instance, null=True, blank=True, on_delete=models.CASCADE, related_name="items")
    frame_index = models.PositiveIntegerField(null=True, blank=True, help_text="0-based frame within the pullback.")
    title = models.CharField(max_length=200)
    split = models.CharField(max_length=16, choices=Split.choices, default=Split.UNASSIGNED, blank=True)
    # Gold items carry a lead's label and are mixed into every annotator's work to measure them.
    is_gold = models.BooleanField(default=False)
    # How many annotators label the item (2 for the overlap share), and how many more may still take it:
    # required_labels minus the annotators who labelled it minus live leases, kept by atomic updates.
    required_labels = models.PositiveSmallIntegerField(default=1)
    open_slots = models.PositiveSmallIntegerField(default=1)
    # How many annotators hold a current label of the item, kept with the label's own transaction: the item
    # still wants labels while this is below required_labels.
    labellers = models.PositiveSmallIntegerField(default=0, db_default=0)
    # Excluded by a lead (unusable image, out of scope): never handed out, trained on or scored; labels are kept.
    excluded_at = models.DateTimeField(null=True, blank=True)
    excluded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # The row's part of the slot invariant (annotation.services.slots): no more open slots than places
            # not yet labelled.
            models.CheckConstraint(
                condition=models.Q(open_slots=0)
                | models.Q(open_slots__lte=models.F("required_labels") - models.F("labellers")),
                name="item_open_slots_within_wanted",
            ),
            models.UniqueConstraint(
                fields=["instance"], condition=models.Q(kind="cine_run"), name="item_one_per_cine_run"
            ),
            models.UniqueConstraint(
                fields=["instance", "frame_index"], condition=models.Q(kind="oct_frame"), name="item_one_per_oct_frame"
            ),
        ]
        indexes = [
            models.Index(fields=["project", "open_slots"], name="item_open_slots"),
            models.Index(fields=["instance", "frame_index"], name="item_pullback_order"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def dicom(self) -> Instance:
        """The DICOM file the item shows: the cine run, or the pullback of an OCT frame (SPECT items have none)."""
        if self.instance is None:
            raise ValueError(f"item {self.pk} ({self.kind}) shows no DICOM file")
        return self.instance


class PolarMapPhase(models.TextChoices):
    REST = "rest", "Rest"
    STRESS = "stress", "Stress"


class PolarMapQuerySet(models.QuerySet):
    def unpaired(self) -> "PolarMapQuerySet":
        """The maps not (yet) in a SPECT exam."""
        return self.filter(rest_exam__isnull=True, stress_exam__isnull=True)


class PolarMap(models.Model):
    """One normalised polar map (bull's-eye); paired rest + stress maps of a patient make a SPECT item.

    A DICOM file gives one map per frame (one frame, or rest and stress as two). A map whose file does not say its
    phase has phase "" until a lead sets it on the pairing list; only maps with a phase are paired.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="polar_maps")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="polar_maps")
    study = models.ForeignKey(Study, null=True, blank=True, on_delete=models.CASCADE, related_name="polar_maps")
    phase = models.CharField(max_length=8, choices=PolarMapPhase.choices, blank=True)
    instance = models.ForeignKey(Instance, null=True, blank=True, on_delete=models.CASCADE, related_name="polar_maps")
    frame_index = models.PositiveSmallIntegerField(default=0, help_text="The map's frame in its DICOM file.")
    image_path = models.CharField(max_length=512, help_text="8-bit PNG normalised to its maximum, under MEDIA_ROOT.")
    rows = models.PositiveIntegerField()
    columns = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    # Age, sex, weight and height read from the file (or manifest) before de-identification, for the exam made
    # when the map is paired, which may be later (a lead setting a phase).
    clinical = models.JSONField(default=dict, blank=True)
    # The lead who set the phase on the pairing list (null: the file stated it).
    phase_set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PolarMapQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "sha256", "phase"],
                condition=models.Q(instance__isnull=True),
                name="polar_map_unique_content",
            ),
            models.UniqueConstraint(
                fields=["instance", "frame_index"],
                condition=models.Q(instance__isnull=False),
                name="polar_map_one_per_frame",
            ),
        ]

    @property
    def exam_item_id(self) -> int | None:
        """The SPECT item the map is paired in, or None while it waits."""
        for exam in ("rest_exam", "stress_exam"):
            try:
                return getattr(self, exam).item_id
            except SpectExam.DoesNotExist:
                continue
        return None


class Sex(models.TextChoices):
    FEMALE = "F", "Female"
    MALE = "M", "Male"
    OTHER = "O", "Other / unknown"


class SpectExam(models.Model):
    """A patient's rest + stress polar maps with the clinical features the SPECT model joins before its head."""

    item = models.OneToOneField(Item, primary_key=True, on_delete=models.CASCADE, related_name="spect")
    rest = models.OneToOneField(PolarMap, on_delete=models.PROTECT, related_name="rest_exam")
    stress = models.OneToOneField(PolarMap, on_delete=models.PROTECT, related_name="stress_exam")
    age = models.PositiveSmallIntegerField(null=True, blank=True)
    sex = models.CharField(max_length=1, choices=Sex.choices, blank=True)
    weight_kg = models.FloatField(null=True, blank=True)
    height_cm = models.FloatField(null=True, blank=True)


class IcaReference(models.Model):
    """Invasive angiography % stenosis per vessel, entered by a lead; append-only, the newest row counts."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="ica_references")
    stenosis_lm = models.FloatField(null=True, blank=True)
    stenosis_lad = models.FloatField(null=True, blank=True)
    stenosis_lcx = models.FloatField(null=True, blank=True)
    stenosis_rca = models.FloatField(null=True, blank=True)
    entered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
