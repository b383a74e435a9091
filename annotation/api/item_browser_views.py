"""The lead's item browser: list a project's items by split, status, uncertainty, class and annotator, sorted and
paged, and apply one action to many items at once. Annotators are refused (403: splits are hidden from them),
strangers see 404."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import item_browser as browser
from annotation.api.permissions import project_for
from annotation.models import Item, ModelVersion, Project
from annotation.services.items import ACTIONS, BULK_MAX, items_bulk_apply
from annotation.tasks import label_task

if TYPE_CHECKING:
    from annotation.item_browser import BrowsedItem

YES_NO = [("true", "true"), ("false", "false")]


@extend_schema_field(OpenApiTypes.STR)
class WordFilter(filters.ChoiceFilter):
    """A choice among the project's own words (its task's classes, its members), set per request."""


@extend_schema_field({"type": "string", "enum": [value for value, _ in YES_NO]})
class YesNoFilter(filters.ChoiceFilter):
    """Only the words true or false (django-filter's BooleanFilter ignores a value it cannot read)."""


@extend_schema_field({"type": "string", "enum": list(browser.STATUSES)})
class StatusFilter(filters.ChoiceFilter):
    """An item status, described inline (a shared "status" enum is the jobs')."""


def _set_per_project() -> list[tuple[str, str]]:
    # Placeholder choices: each request's filter set puts the project's own.
    return []


class ItemBrowserFilter(filters.FilterSet):
    """The browser's query parameters; every value is checked (a bad one is a 400 naming it)."""

    split = filters.ChoiceFilter(
        choices=[(s, s) for s in browser.SPLITS], method="by_split", help_text="the item's split"
    )
    status = StatusFilter(
        choices=[(s, s) for s in browser.STATUSES],
        method="by_status",
        help_text="unlabelled, labelled, skipped (by someone), in_review (a label sent back and not answered) or "
        "disputed (on the adjudication queue)",
    )
    uncertainty_min = filters.NumberFilter(
        field_name="uncertainty", lookup_expr="gte", help_text="the champion's uncertainty, at least"
    )
    uncertainty_max = filters.NumberFilter(
        field_name="uncertainty", lookup_expr="lte", help_text="the champion's uncertainty, at most"
    )
    predicted_class = WordFilter(
        choices=_set_per_project, method="by_predicted_class", help_text="a class the champion predicts"
    )
    labelled_class = WordFilter(
        choices=_set_per_project, method="by_labelled_class", help_text="a class a current label gives"
    )
    annotator = WordFilter(
        choices=_set_per_project, method="by_annotator", help_text="a member holding a current label (username)"
    )
    is_gold = YesNoFilter(choices=YES_NO, method="by_gold", help_text="gold items only (true) or none (false)")
    excluded = YesNoFilter(
        choices=YES_NO, method="by_exclusion", help_text="excluded items only (true) or none (false)"
    )
    ordering = filters.ChoiceFilter(
        choices=[(o, o) for name in browser.ORDERINGS for o in (name, f"-{name}")],
        method="by_ordering",
        help_text="sort key, '-' first for descending (empty values last either way); default id",
    )

    class Meta:
        model = Item
        fields: list[str] = []

    def __init__(self, *args, project: Project | None = None, champion: ModelVersion | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.project, self.champion = project, champion
        if project is not None:
            classes = [(name, name) for name in label_task(project.task_type).class_names]
            self.filters["predicted_class"].extra["choices"] = classes
            self.filters["labelled_class"].extra["choices"] = classes
            self.filters["annotator"].extra["choices"] = [(u, u) for u in browser.annotators_of(project)]

    def by_split(self, queryset: QuerySet[BrowsedItem], name: str, value: str) -> QuerySet[BrowsedItem]:
        return queryset.filter(split="" if value == browser.UNASSIGNED else value)

    def by_status(self, queryset: QuerySet[BrowsedItem], name: str, value: str) -> QuerySet[BrowsedItem]:
        assert self.project is not None
        return browser.items_with_status(self.project, queryset, value)

    def by_predicted_class(self, queryset: QuerySet[BrowsedItem], name: str, value: str) -> QuerySet[BrowsedItem]:
        assert self.project is not None
        return queryset.filter(pk__in=browser.items_predicted_as(self.project, self.champion, value))

    def by_labelled_class(self, queryset: QuerySet[BrowsedItem], name: str, value: str) -> QuerySet[BrowsedItem]:
        assert self.project is not None
        return queryset.filter(pk__in=browser.items_labelled_as(self.project, value))

    def by_annotator(self, queryset: QuerySet[BrowsedItem], name: str, value: str) -> QuerySet[BrowsedItem]:
        return browser.items_labelled_by(queryset, value)

    def by_gold(self, queryset: QuerySet[BrowsedItem], name: str, value: str) -> QuerySet[BrowsedItem]:
        return queryset.filter(is_gold=value == "true")

    def by_exclusion(self, queryset: QuerySet[BrowsedItem], name: str, value: str) -> QuerySet[BrowsedItem]:
        return queryset.filter(excluded_at__isnull=value != "true")

    def by_ordering(self, queryset: QuerySet[BrowsedItem], name: str, value: str) -> QuerySet[BrowsedItem]:
        return browser.items_ordered(queryset, value)


class _ProjectFilterBackend(DjangoFilterBackend):
    """django-filter, handed the view's project and champion (the class and annotator choices are the project's)."""

    def get_filterset_kwargs(self, request, queryset, view) -> dict[str, Any]:
        kwargs = super().get_filterset_kwargs(request, queryset, view)
        return {**kwargs, "project": view.project, "champion": view.champion}


class LabelRowSerializer(serializers.Serializer):
    author = serializers.CharField()
    classes = serializers.ListField(child=serializers.CharField())
    source = serializers.CharField()
    version = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class PredictionRowSerializer(serializers.Serializer):
    model_version = serializers.IntegerField()
    classes = serializers.ListField(child=serializers.CharField())
    uncertainty = serializers.FloatField(allow_null=True)
    confidence = serializers.FloatField(allow_null=True)


class ItemRowSerializer(serializers.Serializer):
    """One row of the item browser (no patient identifiers: the title names the run or frame only)."""

    id = serializers.IntegerField()
    title = serializers.CharField()
    kind = serializers.CharField()
    split = serializers.ChoiceField(choices=browser.SPLITS)
    statuses = serializers.ListField(child=serializers.CharField(), help_text=f"any of {', '.join(browser.STATUSES)}")
    is_gold = serializers.BooleanField()
    excluded = serializers.BooleanField()
    excluded_at = serializers.DateTimeField(allow_null=True)
    excluded_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    labels_count = serializers.IntegerField()
    last_labelled_at = serializers.DateTimeField(allow_null=True)
    labels = LabelRowSerializer(many=True)
    prediction = PredictionRowSerializer(allow_null=True)
    open_url = serializers.CharField(help_text="opens the item in its tool (the workspace)")
    adjudicate_url = serializers.CharField(help_text="the lead's adjudication view of the item")


class ProjectItemsView(generics.ListAPIView):
    """GET /api/projects/<slug>/items/ — the project's items, filtered, sorted and paged (leads)."""

    serializer_class = ItemRowSerializer
    filter_backends = [_ProjectFilterBackend]
    filterset_class = ItemBrowserFilter
    project: Project
    champion: ModelVersion | None

    def get_queryset(self) -> QuerySet[BrowsedItem]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator reads the filters, not the rows
            return cast("QuerySet[BrowsedItem]", Item.objects.none())
        self.project = project_for(self.request, self.kwargs["project_slug"], lead=True)
        self.champion = browser.champion_of(self.project)
        return browser.browsable_items(self.project, self.champion)

    def list(self, request: Request, project_slug: str) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        items = list(page if page is not None else [])
        facts = browser.page_facts(self.project, self.champion, [item.pk for item in items])
        rows = [browser.item_row(self.project, item, facts) for item in items]
        return self.get_paginated_response(ItemRowSerializer(rows, many=True).data)


class BulkActionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=list(ACTIONS), help_text="what to do with every chosen item")
    items = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        min_length=1,
        max_length=BULK_MAX,
        help_text=f"item ids of this project (at most {BULK_MAX})",
    )


class BulkResultSerializer(serializers.Serializer):
    action = serializers.CharField()
    items = serializers.IntegerField(help_text="how many distinct items were named")
    outcomes = serializers.DictField(child=serializers.IntegerField(), help_text="how many items had each outcome")


class ProjectItemsBulkView(APIView):
    """POST /api/projects/<slug>/items/bulk/ — one action on many items: mark_gold, unmark_gold, send_to_review,
    exclude or include (leads). Items of another project are refused by id; nothing changes then."""

    @extend_schema(request=BulkActionSerializer, responses=BulkResultSerializer)
    def post(self, request: Request, project_slug: str) -> Response:
        project = project_for(request, project_slug, lead=True)
        data = BulkActionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ids = list(dict.fromkeys(data.validated_data["items"]))
        outcomes = items_bulk_apply(
            project=project, by=request.user, action=data.validated_data["action"], item_ids=ids
        )
        return Response({"action": data.validated_data["action"], "items": len(ids), "outcomes": outcomes})


__all__ = ["ProjectItemsBulkView", "ProjectItemsView"]
