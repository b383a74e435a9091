"""Leads' decisions about label quality: adjudications, and annotators' work sent back for review."""

from django.conf import settings
from django.db import models

from annotation.models.items import Item
from annotation.models.labels import Label
from annotation.models.learning import Prediction
from annotation.models.projects import Project


class AdjudicationReason(models.TextChoices):
    DISAGREEMENT = "disagreement", "Annotators disagree"
    MODEL_DISAGREES = "model_disagrees", "A confident model disagrees"
    REVIEW = "review", "Sent back for review"
    LEAD = "lead", "A lead's own decision"


class Adjudication(models.Model):
    """A lead's decision on an item: the final label it produced, what was weighed, and why. Append-only."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="adjudications")
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # The adjudication label version this decision stored (training and evaluation use it).
    label = models.OneToOneField(Label, on_delete=models.PROTECT, related_name="adjudication")
    reason = models.CharField(max_length=32, choices=AdjudicationReason.choices)
    # The labels (ids) and the model prediction shown side by side when the lead decided.
    considered_labels = models.JSONField(default=list)
    prediction = models.ForeignKey(Prediction, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class ReviewRequest(models.Model):
    """A lead sends an annotator's recent work back: each item returns to them to look at again."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="review_requests")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviews")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class ReviewItem(models.Model):
    """One item of a review request: the label to look at again, and the version that answered it."""

    request = models.ForeignKey(ReviewRequest, on_delete=models.CASCADE, related_name="items")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    label = models.ForeignKey(Label, on_delete=models.PROTECT, related_name="+")
    resolved_label = models.ForeignKey(Label, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["request", "item"], name="review_item_once_per_request")]
        indexes = [models.Index(fields=["item", "resolved_at"], name="review_item_open")]
