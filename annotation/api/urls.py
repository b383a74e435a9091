from django.urls import include, path
from rest_framework.routers import DefaultRouter, SimpleRouter

from annotation.api import auth, quality_views, views

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
    path("items/<int:pk>/adjudicate/", quality_views.AdjudicateView.as_view(), name="item-adjudicate"),
    path("projects/<slug:project_slug>/", include(project_router.urls)),
    path("", include(router.urls)),
]
