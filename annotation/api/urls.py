from django.urls import include, path
from rest_framework.routers import DefaultRouter, SimpleRouter

from annotation.api import (
    auth,
    interpolation_views,
    item_browser_views,
    label_studio_views,
    pacs_views,
    quality_views,
    views,
)
from annotation.api.export_views import ExportViewSet
from annotation.api.lesion_views import ItemLesionsView, ProjectReportPairsView, ProjectReportsView

app_name = "api"

# Path converters (lookup_value_converter on each viewset): a malformed id is a 404, and the schema types it.
router = DefaultRouter(use_regex_path=False)
router.include_format_suffixes = False  # JSON only: no `.json` twins of every route
router.register("projects", views.ProjectViewSet, basename="project")
router.register("items", views.ItemViewSet, basename="item")
router.register("labels", views.LabelViewSet, basename="label")
router.register("predictions", views.PredictionViewSet, basename="prediction")
router.register("model-versions", views.ModelVersionViewSet, basename="model-version")
router.register("jobs", views.JobViewSet, basename="job")
router.register("polar-maps", views.PolarMapViewSet, basename="polar-map")

project_router = SimpleRouter(use_regex_path=False)
project_router.register("members", views.MembershipViewSet, basename="member")
project_router.register("imports", views.ImportViewSet, basename="import")
project_router.register("exports", ExportViewSet, basename="export")

urlpatterns = [
    path("auth/token/", auth.TokenLoginView.as_view(), name="token"),
    path("auth/logout/", auth.TokenLogoutView.as_view(), name="token-logout"),
    path("auth/logout-all/", auth.TokenLogoutAllView.as_view(), name="token-logout-all"),
    path("me/", views.MeView.as_view(), name="me"),
    path(
        "projects/<slug:project_slug>/quality/export/<str:table>/",
        quality_views.QualityExportView.as_view(),
        name="quality-export",
    ),
    path(
        "projects/<slug:project_slug>/quality/<str:report>/",
        quality_views.QualityReportView.as_view(),
        name="quality-report",
    ),
    path("projects/<slug:project_slug>/reviews/", quality_views.ReviewRequestView.as_view(), name="reviews"),
    path("projects/<slug:project_slug>/reports/", ProjectReportsView.as_view(), name="reports"),
    path(
        "projects/<slug:project_slug>/reports/pairs.csv",
        ProjectReportPairsView.as_view(),
        name="report-pairs",
    ),
    path("items/<int:pk>/lesions/", ItemLesionsView.as_view(), name="item-lesions"),
    path("projects/<slug:project_slug>/items/", item_browser_views.ProjectItemsView.as_view(), name="project-items"),
    path(
        "projects/<slug:project_slug>/items/bulk/",
        item_browser_views.ProjectItemsBulkView.as_view(),
        name="project-items-bulk",
    ),
    path("projects/<slug:project_slug>/dicomweb/", pacs_views.DicomWebServerView.as_view(), name="dicomweb"),
    path(
        "projects/<slug:project_slug>/dicomweb/check/",
        pacs_views.DicomWebCheckView.as_view(),
        name="dicomweb-check",
    ),
    path(
        "projects/<slug:project_slug>/dicomweb/studies/",
        pacs_views.DicomWebStudiesView.as_view(),
        name="dicomweb-studies",
    ),
    path(
        "projects/<slug:project_slug>/dicomweb/imports/",
        pacs_views.DicomWebImportView.as_view(),
        name="dicomweb-imports",
    ),
    path("items/<int:pk>/adjudicate/", quality_views.AdjudicateView.as_view(), name="item-adjudicate"),
    path(
        "projects/<slug:project_slug>/interpolation/",
        interpolation_views.InterpolationView.as_view(),
        name="interpolation",
    ),
    path(
        "projects/<slug:project_slug>/label-studio/",
        label_studio_views.LabelStudioServerView.as_view(),
        name="label-studio",
    ),
    path(
        "projects/<slug:project_slug>/label-studio/push/",
        label_studio_views.LabelStudioPushView.as_view(),
        name="label-studio-push",
    ),
    path(
        "projects/<slug:project_slug>/label-studio/pull/",
        label_studio_views.LabelStudioPullView.as_view(),
        name="label-studio-pull",
    ),
    path(
        "projects/<slug:project_slug>/label-studio/export/",
        label_studio_views.LabelStudioExportView.as_view(),
        name="label-studio-export",
    ),
    path(
        "projects/<slug:project_slug>/label-studio/import/",
        label_studio_views.LabelStudioImportView.as_view(),
        name="label-studio-import",
    ),
    # No login: the signed link is the permission (annotation.services.label_studio.image_link).
    path("label-studio/images/<str:token>/", label_studio_views.label_studio_image, name="label-studio-image"),
    path("", include("annotation.api.ecg_urls")),  # 12-lead ECGs and their stenosis pairs (leads)
    path("projects/<slug:project_slug>/", include(project_router.urls)),
    path("", include(router.urls)),
]
