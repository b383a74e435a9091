"""Production settings: no embedded defaults for secrets, secure cookies, PostgreSQL required."""

from django.core.exceptions import ImproperlyConfigured

from webapp.env import env
from webapp.settings.base import *  # noqa: F403

DEBUG = False
SECRET_KEY = env.str("LUMEN_SECRET_KEY")
PSEUDONYM_KEY = env.str("LUMEN_PSEUDONYM_KEY")
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":  # noqa: F405
    raise ImproperlyConfigured("production needs DATABASE_URL=postgres://…")
# Each web worker process keeps a psycopg pool of open connections instead of connecting per request (Django's
# pool: with it, connections go back to the pool at the end of each request, so CONN_MAX_AGE stays 0).
DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {  # noqa: F405
    "min_size": env.int("LUMEN_DB_POOL_MIN", default=2),
    "max_size": env.int("LUMEN_DB_POOL_MAX", default=8),
    "timeout": 10,
}
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
SESSION_COOKIE_SECURE = env.bool("LUMEN_SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
