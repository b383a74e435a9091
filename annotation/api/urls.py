from django.urls import include, path
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.routers import DefaultRouter, SimpleRouter

from annotation.api import quality_views, views

app_name = "api"

router = DefaultRouter()
router.register("projects", views.ProjectViewSet, basename="project")
router.register("items", views.ItemViewSet, basename="item")
router.register("labels", views.LabelViewSet, basename="label")
router.register("predictions", views.PredictionViewSet, basename="prediction")
router.register("model-versions", views.ModelVersionViewSet, basename="model-version")
router.register("jobs", views.JobViewSet, basename="job")

project_router = SimpleRouter()
project_router.register("members", views.MembershipViewSet, basename="member")
project_router.register("imports", views.ImportViewSet, basename="import")

urlpatterns = [
    path("auth/token/", obtain_auth_token, name="token"),
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
