"""Settings for the test suite: same services as base, fast hashing, isolated media."""

import tempfile
from pathlib import Path

from webapp.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = tempfile.mkdtemp(prefix="lumen-test-media-")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
# Serve static files straight from the apps (no collectstatic needed for browser tests).
STATIC_ROOT = tempfile.mkdtemp(prefix="lumen-test-static-")
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not shared-cache memory: the browser tests' live server answers several requests at once (the
    # workspace fetches the next item ahead), and only a file database waits for a writer (busy timeout, WAL)
    # instead of failing with "database table is locked".
    DATABASES["default"]["TEST"] = {"NAME": str(Path(tempfile.mkdtemp(prefix="lumen-test-db-")) / "test.sqlite3")}  # noqa: F405
