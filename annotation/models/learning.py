"""Model versions, their exact training sets, and per-item predictions with uncertainty."""

from django.db import models

from annotation.models.items import IcaReference, Item
from annotation.models.labels import Label, PseudoLabel
from annotation.models.projects import Project


class ModelStatus(models.TextChoices):
    """Where a model version is in its life; `annotation.services.lifecycle` holds the transitions allowed."""

    TRAINED = "trained", "Trained, not yet judged"
    CANDIDATE = "candidate", "Beat the champion: promoted once it has scored the unlabelled items"
    CHAMPION = "champion", "Champion"
    REJECTED = "rejected", "Rejected"
    RETIRED = "retired", "Retired"


class ModelVersion(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    number = models.PositiveIntegerField(help_text="1, 2, 3 … within the project.")
    family = models.CharField(max_length=64, help_text="Model family from learning's registry, e.g. r2plus1d.")
    status = models.CharField(max_length=16, choices=ModelStatus.choices, default=ModelStatus.TRAINED)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    hyperparameters = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    weights_path = models.CharField(max_length=512, blank=True)
    device = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    trained_at = models.DateTimeField(null=True, blank=True)
    promoted_at = models.DateTimeField(null=True, blank=True)
    # The last decision on the version (judged against a champion, promoted, or refused) and the rule it applied.
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_rule = models.TextField(blank=True)
    compared_with = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="The champion it faced."
    )

    class Meta:
        ordering = ["project_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="model_version_unique_number"),
            models.UniqueConstraint(
                fields=["project"], condition=models.Q(status="champion"), name="model_version_one_champion"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project_id}:v{self.number}"


class TrainingExample(models.Model):
    """One item in a model version's exact training or evaluation set and what its target came from.

    Exactly one source: a human label version, a pseudo-label, or (SPECT with the ICA reference) an
    angiography reference row.
    """

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="training_examples")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    label = models.ForeignKey(Label, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    pseudo_label = models.ForeignKey(PseudoLabel, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    ica_reference = models.ForeignKey(IcaReference, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    split = models.CharField(max_length=16)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_version", "item"], name="training_example_unique_item"),
            models.CheckConstraint(
                condition=(
                    models.Q(label__isnull=False, pseudo_label__isnull=True, ica_reference__isnull=True)
                    | models.Q(label__isnull=True, pseudo_label__isnull=False, ica_reference__isnull=True)
                    | models.Q(label__isnull=True, pseudo_label__isnull=True, ica_reference__isnull=False)
                ),
                name="training_example_one_source",
            ),
        ]


class Prediction(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="predictions")
    output = models.JSONField(help_text="Task output: class probabilities, territory scores, or a mask reference.")
    uncertainty = models.FloatField(null=True, blank=True)
    uncertainty_detail = models.JSONField(default=dict, blank=True)
    # How sure the model is of its answer (what pseudo-labelling thresholds), and a feature vector for
    # diversity-aware strategies; both written by the scoring job.
    confidence = models.FloatField(null=True, blank=True)
    embedding = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "model_version"], name="prediction_unique_per_model")]
        indexes = [models.Index(fields=["model_version", "-uncertainty"], name="prediction_by_uncertainty")]
