"""Labels with their full history, pseudo-labels kept apart from them, and work assignments (leases)."""

from django.conf import settings
from django.db import models

from annotation.models.items import Item


class LabelSource(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    ADJUDICATION = "adjudication", "Adjudication"
    # Made in Label Studio and pulled back (annotation.services.label_studio), with its author.
    LABEL_STUDIO = "label_studio", "Label Studio"


class LabelQuerySet(models.QuerySet):
    def current(self) -> "LabelQuerySet":
        """The labels people hold now: each (item, author)'s newest version."""
        return self.filter(superseded_at__isnull=True)


class Label(models.Model):
    """One version of one person's label of one item; rows are only ever added, never edited.

    A new submit adds version n+1 pointing at version n and stamps n's `superseded_at`; the current
    label of (item, author) is the row whose `superseded_at` is null (a database constraint keeps it unique).
    """

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="labels")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="labels")
    version = models.PositiveIntegerField()
    previous = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="next_version"
    )
    source = models.CharField(max_length=16, choices=LabelSource.choices, default=LabelSource.ANNOTATOR)
    payload = models.JSONField()
    schema_version = models.PositiveSmallIntegerField(default=1)
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    superseded_at = models.DateTimeField(null=True, blank=True)

    objects = LabelQuerySet.as_manager()

    class Meta:
        ordering = ["item_id", "author_id", "version"]
        constraints = [
            models.UniqueConstraint(fields=["item", "author", "version"], name="label_unique_version"),
            models.UniqueConstraint(
                fields=["item", "author"], condition=models.Q(superseded_at__isnull=True), name="label_one_current"
            ),
        ]
        indexes = [models.Index(fields=["author", "-created_at"], name="label_author_recent")]

    @property
    def is_current(self) -> bool:
        return self.superseded_at is None


class PseudoLabel(models.Model):
    """A confident model prediction used as a training label; never shown or counted as a human label."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="pseudo_labels")
    model_version = models.ForeignKey("annotation.ModelVersion", on_delete=models.CASCADE, related_name="pseudo_labels")
    payload = models.JSONField()
    confidence = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "model_version"], name="pseudo_label_unique_per_model")]


class AssignmentState(models.TextChoices):
    LEASED = "leased", "Leased"
    SUBMITTED = "submitted", "Submitted"
    SKIPPED = "skipped", "Skipped"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Expired"


class AssignmentKind(models.TextChoices):
    QUEUE = "queue", "Queue item"
    GOLD = "gold", "Gold item"
    REVIEW = "review", "Review of own label"


class Assignment(models.Model):
    """One hand-over of an item to an annotator, from lease to submit, skip, release or expiry."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    state = models.CharField(max_length=16, choices=AssignmentState.choices, default=AssignmentState.LEASED)
    leased_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    skip_reason = models.CharField(max_length=500, blank=True)
    label = models.ForeignKey(Label, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # What the hand-out is: a queue item (it took a slot), a gold check (a lead-labelled item mixed in to
    # measure the annotator) or a review (their own label sent back by a lead); only queue items hold slots.
    kind = models.CharField(max_length=8, choices=AssignmentKind.choices, default=AssignmentKind.QUEUE)
    # Not stored: set on a lease just taken from the queue or the gold items, of an item this annotator never
    # labelled (the workspace then looks up no label or review of theirs).
    fresh: bool = False

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["item", "annotator"], condition=models.Q(state="leased"), name="assignment_one_open_lease"
            )
        ]
        indexes = [
            models.Index(fields=["state", "expires_at"], name="assignment_lease_expiry"),
            models.Index(fields=["annotator", "item"], name="assignment_by_annotator"),
        ]


class Draft(models.Model):
    """An annotator's unsubmitted work on an item, autosaved by the browser; deleted when the label is submitted."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="drafts")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="drafts")
    payload = models.JSONField()
    # The label version the draft edits (None for a first label), so a restored draft still conflicts correctly.
    base_version = models.PositiveIntegerField(null=True, blank=True)
    time_spent_ms = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "author"], name="draft_one_per_author")]
