"""Production settings: no embedded defaults for secrets, secure cookies, PostgreSQL required."""

from django.core.exceptions import ImproperlyConfigured

from webapp.env import env, strong_key
from webapp.settings.base import *  # noqa: F403

DEBUG = False
# Both keys come from the environment only: never a generated file, never a documented or short value, never one
# key for both (knowing SECRET_KEY must not let anyone recompute a pseudonym from an MRN).
SECRET_KEY = strong_key("LUMEN_SECRET_KEY", env.str("LUMEN_SECRET_KEY"))
PSEUDONYM_KEY = strong_key("LUMEN_PSEUDONYM_KEY", env.str("LUMEN_PSEUDONYM_KEY"))
if PSEUDONYM_KEY == SECRET_KEY:
    raise ImproperlyConfigured("LUMEN_PSEUDONYM_KEY must differ from LUMEN_SECRET_KEY")
CREDENTIALS_KEY = strong_key("LUMEN_CREDENTIALS_KEY", env.str("LUMEN_CREDENTIALS_KEY"))
if CREDENTIALS_KEY in (SECRET_KEY, PSEUDONYM_KEY):
    raise ImproperlyConfigured("LUMEN_CREDENTIALS_KEY must differ from LUMEN_SECRET_KEY and LUMEN_PSEUDONYM_KEY")
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
SESSION_COOKIE_HTTPONLY = True
# Behind the TLS-terminating proxy (which sets X-Forwarded-Proto): plain HTTP is redirected, browsers are told to
# use HTTPS only (HSTS), and every response carries the headers of SecurityMiddleware and the CSP of base.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("LUMEN_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("LUMEN_HSTS_SECONDS", default=365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("LUMEN_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("LUMEN_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
