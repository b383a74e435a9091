from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

# The API docs page loads its start-up script from a URL (no inline script under the CSP); Swagger UI's own
# stylesheet needs inline styles there.
api_docs = csp_update({"style-src": ["'self'", "'unsafe-inline'"]})(
    SpectacularSwaggerSplitView.as_view(url_name="schema")
)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", api_docs, name="swagger-ui"),
    path("api/", include("annotation.api.urls")),
    path("", include("frontend.urls")),
]

handler400 = "webapp.errors.bad_request"
handler404 = "webapp.errors.not_found"
handler500 = "webapp.errors.server_error"
