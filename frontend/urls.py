from django.contrib.auth import views as auth_views
from django.urls import path

from frontend import ecg_views, item_views, quality_views, views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="frontend/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.home, name="home"),
    path("projects/<slug:slug>/", views.project_detail, name="project-detail"),
    path("projects/<slug:slug>/label/", views.workspace, name="workspace"),
    path("projects/<slug:slug>/quality/", quality_views.quality_dashboard, name="quality"),
    path("projects/<slug:slug>/items/", item_views.item_browser, name="item-browser"),
    path("projects/<slug:slug>/ecgs/", ecg_views.ecg_list, name="ecg-list"),
    path("projects/<slug:slug>/ecgs/<int:ecg_id>/", ecg_views.ecg_detail, name="ecg-detail"),
    path("projects/<slug:slug>/adjudicate/<int:item_id>/", quality_views.adjudicate, name="adjudicate"),
]
