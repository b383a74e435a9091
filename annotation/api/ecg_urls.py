"""The ECG routes of the API (included by annotation.api.urls inside its "api" namespace)."""

from django.urls import path

from annotation.api import ecg_views

urlpatterns = [
    path("projects/<slug:project_slug>/ecgs/", ecg_views.ProjectEcgsView.as_view(), name="project-ecgs"),
    path("projects/<slug:project_slug>/ecgs/pairs.csv", ecg_views.EcgPairsView.as_view(), name="project-ecg-pairs"),
    path("ecgs/<int:pk>/", ecg_views.EcgDetailView.as_view(), name="ecg-detail"),
    path("ecgs/<int:pk>/signal/", ecg_views.EcgSignalView.as_view(), name="ecg-signal"),
]
