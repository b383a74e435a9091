"""Settings for the test suite: same services as base, fast hashing, isolated media."""

import tempfile
from pathlib import Path

from webapp.settings.base import *  # noqa: F403

# Fixed keys: pseudonyms, and so the patient splits derived from them, are the same on every run and machine.
SECRET_KEY = "lumen-tests-only-secret-key-4f1d9c2a7b6e8d0f3a5c1e9b7d2f4a6c8e0b"
PSEUDONYM_KEY = "lumen-tests-only-pseudonym-key-9e2b7d4f1a6c3e8b0d5f2a7c4e9b1d6f"
CREDENTIALS_KEY = "lumen-tests-only-credentials-key-3c8e1a5f7b2d9e4a6c0f8b1d3e5a7c9f"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = tempfile.mkdtemp(prefix="lumen-test-media-")
LUMEN_ORCHESTRATOR_STATUS_FILE = Path(MEDIA_ROOT) / "orchestrator-status.json"
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
