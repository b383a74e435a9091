"""Production settings: no embedded defaults for secrets, secure cookies, PostgreSQL required."""

from django.core.exceptions import ImproperlyConfigured

from webapp.env import env
from webapp.settings.base import *  # noqa: F403

DEBUG = False
SECRET_KEY = env.str("LUMEN_SECRET_KEY")
PSEUDONYM_KEY = env.str("LUMEN_PSEUDONYM_KEY")
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":  # noqa: F405
    raise ImproperlyConfigured("production needs DATABASE_URL=postgres://…")
SESSION_COOKIE_SECURE = env.bool("LUMEN_SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
