"""The labelling queue: each project's current ranking of the items still wanting labels.

A ranking is a *generation* of `QueueEntry` rows. Re-ranking writes a whole new generation next to the old
one and then switches `ProjectQueue.generation` in the same transaction, so readers see the old order or
the new one, never a mix, and leasing (which locks `Item` rows) never waits for a re-rank (which only
inserts entry rows).
"""

from django.conf import settings
from django.db import models

from annotation.models.items import Item
from annotation.models.learning import ModelVersion
from annotation.models.projects import Project


class ProjectQueue(models.Model):
    """Which generation of entries orders a project's queue, and what produced it."""

    project = models.OneToOneField(Project, primary_key=True, on_delete=models.CASCADE, related_name="queue")
    generation = models.PositiveIntegerField(default=0)
    # What ranked the current generation: a model version's stored scores, or a cold start (no model yet).
    model_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    strategy = models.CharField(max_length=64, blank=True)
    ranked_items = models.PositiveIntegerField(default=0)
    ranked_at = models.DateTimeField(null=True, blank=True)
    rank_seconds = models.FloatField(default=0.0)
    # Items added since the last ranking (new imports): they sit below the ranked ones until the next one.
    unranked_items = models.PositiveIntegerField(default=0)
    # Queue size last broadcast to the project's members, so unchanged counts are not sent again.
    announced_open = models.IntegerField(default=-1)
    # Items whose labellers are fewer than they need, kept in the transactions that change it (null: not
    # counted yet; the first reader counts it once).
    wanting_items = models.IntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.project_id}:g{self.generation}"


class QueueEntry(models.Model):
    """One item's place in one generation of a project's queue (higher priority is served first)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    generation = models.PositiveIntegerField()
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="queue_entries")
    priority = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "generation"], name="queue_entry_once_per_generation"),
        ]
        indexes = [
            models.Index(fields=["project", "generation", "-priority", "item"], name="queue_entry_order"),
        ]


class WorkTally(models.Model):
    """One annotator's counts in one project, kept in the same transaction as the label, skip or lease that
    changes them, so showing progress never scans the project.

    The annotator's items still to do are the project's `wanting_items` minus `excused`.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    # Items they hold a current label of.
    done = models.IntegerField(default=0)
    # Items they skipped and have not labelled since.
    skipped = models.IntegerField(default=0)
    # Items still wanting labels that they labelled or skipped: not theirs to do.
    excused = models.IntegerField(default=0)
    # Queue and gold hand-outs (reviews not counted), for the gold rate.
    handouts = models.IntegerField(default=0)
    gold_handouts = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "annotator"], name="work_tally_once")]

    def __str__(self) -> str:
        return f"{self.project_id}:{self.annotator_id}"
