"""Query parameters of the API's lists, validated by django-filter: a bad value is a 400 naming the parameter.

Ids are whole numbers a database key can hold, slugs are slugs, choices are from their list; text never carries
a NUL byte (Django's form fields refuse it).
"""

from __future__ import annotations

from typing import overload

from django import forms
from django.db.models import Q
from django_filters import rest_framework as filters

from annotation.models import (
    BurnedInReview,
    Item,
    ItemKind,
    Job,
    Label,
    ModelVersion,
    PolarMap,
    Prediction,
    Split,
    TrainingExample,
)

MAX_ID = 2**63 - 1  # PostgreSQL bigint


class IdFilter(filters.NumberFilter):
    """A database id: a whole number from 0 to the largest bigint."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("min_value", 0)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class ProjectSlugFilter(filters.CharFilter):
    field_class = forms.SlugField

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("field_name", "project__slug")
        kwargs.setdefault("help_text", "project slug")
        super().__init__(**kwargs)


class ItemFilter(filters.FilterSet):
    project = ProjectSlugFilter()
    kind = filters.ChoiceFilter(choices=ItemKind.choices)
    pullback = IdFilter(field_name="instance_id", method="of_pullback", help_text="the frames of one OCT pullback")
    burned_in_review = filters.ChoiceFilter(
        method="of_burned_in_files",
        choices=[c for c in BurnedInReview.choices if c[0]],
        help_text="one item per file with burned-in text (a pullback's first frame), by the lead's decision "
        "(pending: waiting for one)",
    )

    class Meta:
        model = Item
        fields = ["project", "kind", "pullback", "burned_in_review"]

    def of_burned_in_files(self, queryset, name, value):
        first = Q(frame_index__isnull=True) | Q(frame_index=0)
        return queryset.filter(first, instance__burned_in_review=value)

    def of_pullback(self, queryset, name, value):
        return queryset.filter(instance_id=value).order_by("frame_index", "pk")


class LabelFilter(filters.FilterSet):
    item = IdFilter(field_name="item_id", help_text="item id")
    project = ProjectSlugFilter(field_name="item__project__slug")
    current = filters.BooleanFilter(method="only_current", help_text="true: current versions only")
    mine = filters.BooleanFilter(method="only_mine", help_text="true: your own labels only")

    class Meta:
        model = Label
        fields = ["item", "project", "current", "mine"]

    def only_current(self, queryset, name, value):
        return queryset.current() if value else queryset

    def only_mine(self, queryset, name, value):
        return queryset.filter(author=self.request.user) if value else queryset


class PredictionFilter(filters.FilterSet):
    item = IdFilter(field_name="item_id", help_text="item id")
    model_version = IdFilter(field_name="model_version_id", help_text="model version id")

    class Meta:
        model = Prediction
        fields = ["item", "model_version"]


class ModelVersionFilter(filters.FilterSet):
    project = ProjectSlugFilter()

    class Meta:
        model = ModelVersion
        fields = ["project"]


class PolarMapFilter(filters.FilterSet):
    project = ProjectSlugFilter()
    paired = filters.BooleanFilter(method="by_pairing", help_text="false: the maps still waiting for a pair")

    class Meta:
        model = PolarMap
        fields = ["project", "paired"]

    def by_pairing(self, queryset, name, value):
        unpaired = queryset.unpaired()
        return queryset.exclude(pk__in=unpaired.values("pk")) if value else unpaired


class JobFilter(filters.FilterSet):
    project = ProjectSlugFilter()

    class Meta:
        model = Job
        fields = ["project"]


class TrainingExampleFilter(filters.FilterSet):
    split = filters.ChoiceFilter(
        choices=[(Split.TRAIN, "train"), (Split.VALIDATION, "validation"), (Split.TEST, "test")]
    )

    class Meta:
        model = TrainingExample
        fields = ["split"]


@overload
def query_int(request, name: str, *, lowest: int, highest: int = MAX_ID, default: int) -> int: ...
@overload
def query_int(request, name: str, *, lowest: int, highest: int = MAX_ID, default: None = None) -> int | None: ...
def query_int(request, name: str, *, lowest: int, highest: int = MAX_ID, default: int | None = None) -> int | None:
    """Return the whole-number query parameter `name` (`default` when absent or empty), or raise a 400 naming it."""
    from rest_framework.exceptions import ValidationError

    field = forms.IntegerField(required=False, min_value=lowest, max_value=highest)
    try:
        value = field.clean(request.query_params.get(name))
    except forms.ValidationError as error:
        raise ValidationError({name: error.messages}) from None
    return default if value is None else value


def after_param(request) -> int | None:
    """`?after=<n>`: a position or an item id after which to continue (None when absent)."""
    return query_int(request, "after", lowest=-1)
