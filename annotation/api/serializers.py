"""Input validation and output shapes; no business logic lives here."""

from __future__ import annotations

import copy
from typing import Any

from django.contrib.auth import get_user_model
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotation.models import (
    Draft,
    IcaReference,
    ImportFile,
    Instance,
    Item,
    Job,
    Label,
    Membership,
    ModelVersion,
    Patient,
    PolarMap,
    Prediction,
    Project,
    ProjectQueue,
    Role,
    TrainingExample,
)
from annotation.tasks import label_task, task_choices
from learning.spect_scoring import ica_obstructive


class FieldsBuiltOnce(serializers.ModelSerializer):
    """A ModelSerializer whose fields are built from the model's metadata once per class, not per instance.

    DRF's ModelSerializer introspects the model and builds every field each time one is instantiated (each item the
    workspace or `next` answers, each stored label); here each instance gets a deep copy of the fields built the
    first time, as DRF gives each instance its declared fields. Only for serializers whose fields depend on the
    class alone (not on the context or the instance).
    """

    def get_fields(self) -> dict[str, Any]:
        built = type(self).__dict__.get("_fields_built")
        if built is None:
            built = super().get_fields()
            type(self)._fields_built = built
        return copy.deepcopy(built)


class ProjectSerializer(serializers.ModelSerializer):
    item_count = serializers.IntegerField(read_only=True, default=0)
    labelled_count = serializers.IntegerField(read_only=True, default=0)
    my_labelled_count = serializers.IntegerField(read_only=True, default=0)
    my_role = serializers.SerializerMethodField()

    class Meta:
        model = Project
        fields = [
            "slug",
            "name",
            "description",
            "instructions",
            "task_type",
            "settings",
            "archived",
            "created_at",
            "item_count",
            "labelled_count",
            "my_labelled_count",
            "my_role",
        ]
        read_only_fields = fields

    def get_my_role(self, project: Project) -> str | None:
        roles = self.context.get("roles", {})
        return roles.get(project.pk)


class ProjectCreateSerializer(serializers.Serializer):
    slug = serializers.SlugField(max_length=64)
    name = serializers.CharField(max_length=200)
    task_type = serializers.ChoiceField(choices=[])
    description = serializers.CharField(required=False, allow_blank=True, default="")
    instructions = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=20000, trim_whitespace=False, help_text="Markdown"
    )
    settings = serializers.DictField(required=False, default=dict)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["task_type"].choices = task_choices()  # the tasks this server offers (LUMEN_TASKS)

    def validate_slug(self, value: str) -> str:
        if Project.objects.filter(slug=value).exists():
            raise serializers.ValidationError(f"a project with slug {value!r} already exists")
        return value


class ProjectUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    instructions = serializers.CharField(
        required=False, allow_blank=True, max_length=20000, trim_whitespace=False, help_text="Markdown"
    )
    settings = serializers.DictField(required=False)
    archived = serializers.BooleanField(required=False)


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "role", "created_at"]


class MembershipWriteSerializer(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)

    def validate_username(self, value: str):
        user = get_user_model().objects.filter(username=value, is_active=True).first()
        if user is None:
            raise serializers.ValidationError(f"no active user named {value!r}")
        return user


class ImportUploadSerializer(serializers.Serializer):
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True),
        allow_empty=False,
        help_text="DICOM files, zip archives, or PNG polar maps with a manifest.csv.",
    )
    paths = serializers.ListField(
        child=serializers.CharField(max_length=1024, allow_blank=True, trim_whitespace=False),
        required=False,
        help_text="Optional: each file's path inside the dropped folder, in the order of `files` (shown in results).",
    )

    def validate(self, attrs):
        paths = attrs.get("paths") or []
        if paths and len(paths) != len(attrs["files"]):
            raise serializers.ValidationError(
                {"paths": f"{len(paths)} paths for {len(attrs['files'])} files: give one path per file, or none"}
            )
        return attrs


class ImportFileSerializer(serializers.ModelSerializer):
    class Meta:
        model = ImportFile
        fields = ["position", "name", "outcome", "reason", "message", "instance", "items_created"]


class PatientMapSerializer(serializers.ModelSerializer):
    original_patient_id = serializers.CharField(source="identity.original_patient_id", default="")
    original_name = serializers.CharField(source="identity.original_name", default="")
    original_birth_date = serializers.CharField(source="identity.original_birth_date", default="")
    issuer = serializers.CharField(source="identity.issuer", default="")

    class Meta:
        model = Patient
        fields = ["pseudonym", "original_patient_id", "original_name", "original_birth_date", "issuer"]


class BurnedInSerializer(FieldsBuiltOnce):
    """What is known of burned-in text in a file, and the lead's decision (never the text itself)."""

    instance = serializers.IntegerField(source="pk", read_only=True)
    annotation = serializers.CharField(source="burned_in_annotation", read_only=True)
    text_regions = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()), allow_null=True, read_only=True
    )
    review = serializers.CharField(source="burned_in_review", read_only=True)

    class Meta:
        model = Instance
        fields = ["instance", "annotation", "text_regions", "review"]
        read_only_fields = fields


class ItemSerializer(FieldsBuiltOnce):
    """What an annotator may see of an item: no identifiers, no file names, only pseudonyms."""

    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    patient = serializers.CharField(source="patient.pseudonym", read_only=True)
    split = serializers.SerializerMethodField()
    media = serializers.SerializerMethodField()
    burned_in = BurnedInSerializer(source="instance", read_only=True, allow_null=True)

    class Meta:
        model = Item
        fields = [
            "id",
            "project",
            "kind",
            "title",
            "patient",
            "split",
            "frame_index",
            "media",
            "burned_in",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_split(self, item: Item) -> str | None:
        """The item's split for the project's leads; null for annotators, who never learn what is held out."""
        request = self.context.get("request")
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        if "lead_projects" not in self.context:  # a view that knows the role passes it (one query less)
            self.context["lead_projects"] = set(
                Membership.objects.filter(user=user, role=Role.LEAD).values_list("project_id", flat=True)
            )
        return item.split if user.is_superuser or item.project_id in self.context["lead_projects"] else None

    @extend_schema_field(serializers.DictField())
    def get_media(self, item: Item) -> dict:
        """What the workspace's tool loads for the item (the task's `item_media`): frame URLs, polar maps…"""
        return label_task(item.project.task_type).item_media(item)


class LabelSerializer(FieldsBuiltOnce):
    author = serializers.CharField(source="author.username", read_only=True)
    is_current = serializers.BooleanField(read_only=True)

    class Meta:
        model = Label
        fields = [
            "id",
            "item",
            "author",
            "version",
            "previous",
            "source",
            "payload",
            "time_spent_ms",
            "created_at",
            "superseded_at",
            "is_current",
        ]
        read_only_fields = fields


class _VisibleItemField(serializers.PrimaryKeyRelatedField):
    """An item id among the items the requesting user may label (a member of its project): a hidden item reads
    exactly like a missing one."""

    def get_queryset(self):
        from annotation.selectors import items_to_label

        return items_to_label(self.context["request"].user)

    def to_internal_value(self, data):
        from annotation.selectors import item_to_label

        # What PrimaryKeyRelatedField does, through the compiled query of the submit path (selectors).
        if isinstance(data, bool) or not isinstance(data, int | str):
            self.fail("incorrect_type", data_type=type(data).__name__)
        try:
            item = item_to_label(self.context["request"].user, int(data))
        except ValueError:
            self.fail("incorrect_type", data_type=type(data).__name__)
        if item is None:
            self.fail("does_not_exist", pk_value=data)
        return item


class LabelSubmitSerializer(serializers.Serializer):
    item = _VisibleItemField(queryset=Item.objects.none())
    payload = serializers.JSONField()
    base_version = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        help_text="The version you edited; omit or null for a first label.",
    )
    time_spent_ms = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=86_400_000)


class PredictionSerializer(FieldsBuiltOnce):
    model_version = serializers.IntegerField(source="model_version.number", read_only=True)

    class Meta:
        model = Prediction
        fields = ["id", "item", "model_version", "output", "uncertainty", "uncertainty_detail", "created_at"]
        read_only_fields = fields


class ModelVersionSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    parent = serializers.IntegerField(source="parent.number", read_only=True, default=None)
    compared_with = serializers.IntegerField(source="compared_with.number", read_only=True, default=None)
    training_set_size = serializers.IntegerField(read_only=True, default=None)

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "project",
            "number",
            "family",
            "status",
            "parent",
            "hyperparameters",
            "metrics",
            "device",
            "created_at",
            "trained_at",
            "promoted_at",
            "decided_at",
            "decision_rule",
            "compared_with",
            "training_set_size",
        ]
        read_only_fields = fields


class JobSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "project",
            "kind",
            "status",
            "progress",
            "detail",
            "params",
            "result",
            "error",
            "attempts",
            "model_version",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class DraftSerializer(FieldsBuiltOnce):
    class Meta:
        model = Draft
        fields = ["payload", "base_version", "time_spent_ms", "updated_at"]
        read_only_fields = ["updated_at"]


class DraftWriteSerializer(serializers.Serializer):
    payload = serializers.JSONField()
    base_version = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)
    time_spent_ms = serializers.IntegerField(required=False, default=0, min_value=0, max_value=86_400_000)


class SkipSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, help_text="Why the item was skipped (shown to the lead).")


class IcaReferenceSerializer(serializers.ModelSerializer):
    entered_by = serializers.CharField(source="entered_by.username", default=None, read_only=True)
    obstructive = serializers.SerializerMethodField()

    class Meta:
        model = IcaReference
        fields = [
            "stenosis_lm",
            "stenosis_lad",
            "stenosis_lcx",
            "stenosis_rca",
            "obstructive",
            "entered_by",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.DictField(child=serializers.BooleanField()))
    def get_obstructive(self, ica: IcaReference) -> dict[str, bool]:
        """Obstructive = LM ≥ 50 % (which feeds LAD and LCX) or LAD/LCX/RCA ≥ 70 %; an empty value counts as 0."""
        flags = ica_obstructive(
            {
                "LM": ica.stenosis_lm or 0.0,
                "LAD": ica.stenosis_lad or 0.0,
                "LCX": ica.stenosis_lcx or 0.0,
                "RCA": ica.stenosis_rca or 0.0,
            }
        )
        return {**flags, "any": any(flags.values())}


class IcaReferenceWriteSerializer(serializers.Serializer):
    stenosis_lm = serializers.JSONField(required=False, allow_null=True)
    stenosis_lad = serializers.JSONField(required=False, allow_null=True)
    stenosis_lcx = serializers.JSONField(required=False, allow_null=True)
    stenosis_rca = serializers.JSONField(required=False, allow_null=True)


class NextItemSerializer(serializers.Serializer):
    item = serializers.IntegerField(allow_null=True)
    workspace_url = serializers.CharField(allow_null=True)
    lease_expires_at = serializers.DateTimeField(allow_null=True)
    progress = serializers.DictField(child=serializers.IntegerField())
    workspace = serializers.DictField(allow_null=True, required=False, help_text="The item's workspace body.")
    detail = serializers.CharField(required=False)


class RecentLabelSerializer(serializers.ModelSerializer):
    title = serializers.CharField(source="item.title", read_only=True)

    class Meta:
        model = Label
        fields = ["item", "title", "version", "created_at"]
        read_only_fields = fields


class TrainRequestSerializer(serializers.Serializer):
    family = serializers.CharField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Model family; empty lets the task choose (vessel type: contrast_logreg, fused_vessel from "
        "pixel_model_min_labels labels).",
    )
    hparams = serializers.DictField(required=False, default=dict, help_text="Hyper-parameter overrides.")


class SplitsSerializer(serializers.Serializer):
    test_fraction = serializers.FloatField(required=False, min_value=0.0, max_value=0.6)
    validation_fraction = serializers.FloatField(required=False, min_value=0.0, max_value=0.6)
    split_seed = serializers.IntegerField(required=False, min_value=0)
    lock_test = serializers.BooleanField(required=False, default=False)


class TrainingExampleSerializer(serializers.ModelSerializer):
    label_version = serializers.IntegerField(source="label.version", read_only=True, default=None)
    source = serializers.SerializerMethodField()

    class Meta:
        model = TrainingExample
        fields = ["item", "split", "source", "label", "label_version", "pseudo_label", "ica_reference"]
        read_only_fields = fields

    def get_source(self, example: TrainingExample) -> str:
        if example.pseudo_label_id:
            return "pseudo_label"
        return "ica_reference" if example.ica_reference_id else "label"


class PolarMapSerializer(serializers.ModelSerializer):
    """A polar map on the lead's pairing list: its phase (empty when its file did not say) and its pair."""

    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    patient = serializers.CharField(source="patient.pseudonym", read_only=True)
    image_url = serializers.SerializerMethodField()
    item = serializers.IntegerField(
        source="exam_item_id", read_only=True, allow_null=True, help_text="the SPECT item the map is paired in"
    )

    class Meta:
        model = PolarMap
        fields = [
            "id",
            "project",
            "patient",
            "study",
            "instance",
            "frame_index",
            "phase",
            "rows",
            "columns",
            "image_url",
            "item",
            "created_at",
        ]
        read_only_fields = fields

    def get_image_url(self, polar: PolarMap) -> str:
        return reverse("api:polar-map-image", args=[polar.pk])


class PolarMapPhaseSerializer(serializers.Serializer):
    phase = serializers.ChoiceField(choices=["rest", "stress"])


class GoldSerializer(serializers.Serializer):
    is_gold = serializers.BooleanField()


class BurnedInDecisionSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["exclude", "mask", "release"])
    regions = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(min_value=0), min_length=4, max_length=4),
        required=False,
        min_length=1,
        max_length=200,
        help_text="boxes [x, y, width, height] to paint black (mask); default: where the text check found words",
    )


class QueueSerializer(serializers.ModelSerializer):
    """What ranked the project's queue (leads)."""

    model_version = serializers.IntegerField(source="model_version.number", allow_null=True, read_only=True)
    model_status = serializers.CharField(
        source="model_version.status",
        allow_null=True,
        read_only=True,
        help_text="the ranking model's status: champion, or rejected (the newest model, before the first champion)",
    )

    class Meta:
        model = ProjectQueue
        fields = [
            "generation",
            "model_version",
            "model_status",
            "strategy",
            "ranked_items",
            "ranked_at",
            "rank_seconds",
            "unranked_items",
        ]
        read_only_fields = fields
