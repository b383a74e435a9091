"""ASGI entry point: HTTP through Django's handler in a thread pool (webapp/http_bridge.py), websockets through
Channels."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings.base")

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

django_wsgi_app = get_wsgi_application()

import gc  # noqa: E402
from importlib import import_module  # noqa: E402

from django.conf import settings  # noqa: E402

# Import every view (and what they import: the task registry, the models' code) while the worker starts, not
# during the first request each worker process answers (seconds, which showed as the p99 of `next`).
import_module(settings.ROOT_URLCONF)

from annotation.routing import websocket_urlpatterns  # noqa: E402
from webapp.http_bridge import DjangoHTTP  # noqa: E402
from webapp.limits import BodyLimitMiddleware  # noqa: E402
from webapp.warmup import urls_warm  # noqa: E402

# Build the URL reverse tables too (every namespace's), which the first `next` of each worker built otherwise.
urls_warm()

# What the worker imported lives as long as the process: leave it out of the garbage collector's full passes.
# A full pass over it takes ~150 ms (torch, Django, the models), which every request waiting on this worker
# would otherwise pay now and then (the max and p99 of `next`).
gc.freeze()

application = ProtocolTypeRouter(
    {
        # Bodies are bounded, and uploads authenticated, before Django reads them (webapp/limits.py).
        "http": BodyLimitMiddleware(DjangoHTTP(django_wsgi_app)),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
