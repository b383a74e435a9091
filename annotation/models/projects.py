"""Projects, their task type and settings, and who works on them in which role."""

from django.conf import settings as django_settings
from django.db import models


class TaskType(models.TextChoices):
    """The names of the built-in tasks. Which tasks a server offers is settings.LUMEN_TASKS (annotation.tasks)."""

    VESSEL_TYPE = "vessel_type", "Vessel type (angiography cine)"
    OCT_CALCIUM = "oct_calcium", "Calcium masks (IVOCT)"
    SPECT_TERRITORY = "spect_territory", "SPECT territories"


class Role(models.TextChoices):
    LEAD = "lead", "Lead"
    ANNOTATOR = "annotator", "Annotator"


class ProjectQuerySet(models.QuerySet):
    def lock(self, pk: int) -> "Project":
        """Return project `pk` with its row locked until the transaction ends: the project's mutex (version
        numbers, job conflicts, splits, promotion and re-rank, settings).

        FOR NO KEY UPDATE, not FOR UPDATE: the holders exclude one another all the same, but the foreign-key
        checks of rows that reference the project (PostgreSQL takes FOR KEY SHARE on it when an import commits
        its items) pass. With FOR UPDATE an import's commit waited for a scoring job holding the project while
        that job's re-rank waited for the queue row the import held: a deadlock that failed one imported file.
        """
        return self.select_for_update(no_key=True).get(pk=pk)


class Project(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # Labelling instructions in Markdown, shown to annotators beside the tool (rendered by frontend.markdown).
    instructions = models.TextField(blank=True, max_length=20000)
    # The name of a task registered in settings.LUMEN_TASKS (annotation.tasks): no choices, so a new task needs no
    # migration; project_create refuses a name the registry does not know.
    task_type = models.CharField(max_length=32)
    # Validated through annotation.project_settings.ProjectSettings; stored whole so new knobs need no migration.
    settings = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    archived = models.BooleanField(default=False)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.slug

    @property
    def task(self):
        """Return the project's labelling task (annotation.tasks): everything task-specific is asked of it."""
        from annotation.tasks import label_task

        return label_task(self.task_type)


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(django_settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user")]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.project_id}:{self.role}"
