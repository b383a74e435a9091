"""Settings shared by every environment; each value comes from the environment with a safe default."""

from datetime import timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from webapp.env import BASE_DIR, LOCAL_DATA, env, local_key

DEBUG = env.bool("LUMEN_DEBUG", default=False)
# Development and demo: keys from the environment, else random keys generated into var/ on first run (never a
# default anyone knows). Production (webapp.settings.production) takes them from the environment only.
SECRET_KEY = env.str("LUMEN_SECRET_KEY", default="") or local_key("secret")
# Keyed hash for pseudonyms and remapped UIDs, independent of SECRET_KEY (whose uses are many and which may be
# rotated); changing it changes every pseudonym.
PSEUDONYM_KEY = env.str("LUMEN_PSEUDONYM_KEY", default="") or local_key("pseudonym")
# Encrypts the credentials of external servers (DICOMweb, Label Studio) stored in the database
# (annotation.credentials); without it they cannot be read back.
CREDENTIALS_KEY = env.str("LUMEN_CREDENTIALS_KEY", default="") or local_key("credentials")
# A DICOMweb server (PACS) every project may import from unless its leads set their own (annotation/services/
# dicomweb.py): configured by the deployment, its password stays in the environment, never in the database.
LUMEN_DICOMWEB_URL = env.str("LUMEN_DICOMWEB_URL", default="")
LUMEN_DICOMWEB_USERNAME = env.str("LUMEN_DICOMWEB_USERNAME", default="")
LUMEN_DICOMWEB_PASSWORD = env.str("LUMEN_DICOMWEB_PASSWORD", default="")
ALLOWED_HOSTS = env.list("LUMEN_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("LUMEN_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "knox",
    "axes",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "annotation",
    "frontend",
]

MIDDLEWARE = [
    # First: /healthz and /readyz answer probes before host checks and HTTPS redirects (webapp/health.py).
    "webapp.health.HealthMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: turns a lockout on the login form or the admin into its 429 page.
    "axes.middleware.AxesMiddleware",
]

# django-axes counts failed logins on every path that authenticates a password (login form, admin, API token)
# and locks a username for the client address that failed too often; the first backend checks the lock.
# The labelling tasks offered, one class each (annotation.tasks.base.LabelTask): add a task by listing it here.
LUMEN_TASKS = [
    "annotation.tasks.vessel.VesselType",
    "annotation.tasks.oct.OctCalcium",
    "annotation.tasks.spect.SpectTerritory",
]

AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("LUMEN_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("LUMEN_LOGIN_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_TEMPLATE = "frontend/locked_out.html"
AXES_VERBOSE = False

# Content Security Policy (django-csp): scripts, styles, frames and connections from this origin only; images
# also from blob: (frames decoded in the page) and data:. No inline script or style anywhere in the frontend, except
# the label page's own styles, which that one response allows by their SHA-256 (frontend/inline_styles.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "img-src": ["'self'", "blob:", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

ROOT_URLCONF = "webapp.urls"
ASGI_APPLICATION = "webapp.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{LOCAL_DATA / 'lumen.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    LOCAL_DATA.mkdir(exist_ok=True)
    # WAL and a busy timeout let the web server and the worker share the demo database; IMMEDIATE transactions
    # take the write lock when they begin, so a writer waits for the other process instead of failing with
    # "database is locked" when its read snapshot cannot be upgraded.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    # Parameters travel apart from the SQL (server-side binding), so the same statement text comes back on every
    # call, and psycopg prepares a statement the second time one connection runs it: PostgreSQL then plans the
    # hot path's joins once per connection instead of on every request (planning the workspace's item query took
    # 2 ms, running it 0.4 ms). Connections live in a pool (production) or for the process, never behind a
    # transaction-pooling proxy, which would hand a prepared statement's name to another session.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"server_side_binding": True, "prepare_threshold": 2})

REDIS_URL = env.str("REDIS_URL", default="")
# The cache holds the API throttles' counters: shared by every web process through Redis when there is one.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("LUMEN_CHANNEL_PREFIX", default="lumen"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py 8 times every read out after 5 s, exactly as long as channels_redis waits for a
                # message: idle websockets would crash and reconnect every 5 s (django/channels_redis#422).
                "hosts": [{"address": REDIS_URL, "socket_timeout": env.int("LUMEN_REDIS_SOCKET_TIMEOUT", default=30)}],
                "prefix": env.str("LUMEN_CHANNEL_PREFIX", default="lumen"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("LUMEN_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("LUMEN_STATIC_ROOT", default=BASE_DIR / "var" / "static")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Stored (de-identified) DICOM, rendered frame cache and polar maps live here.
MEDIA_ROOT = env.path("LUMEN_MEDIA_ROOT", default=BASE_DIR / "var" / "media")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Uploads: files above this many bytes are rejected per file; a batch may hold many files.
LUMEN_MAX_FILE_BYTES = env.int("LUMEN_MAX_FILE_BYTES", default=1024 * 1024 * 1024)
LUMEN_MAX_ZIP_MEMBERS = env.int("LUMEN_MAX_ZIP_MEMBERS", default=20000)
# Zip archives: what all members together may expand to, and the most a large member may be compressed (zip bombs).
LUMEN_MAX_ZIP_EXPANDED_BYTES = env.int("LUMEN_MAX_ZIP_EXPANDED_BYTES", default=20 * 1024**3)
LUMEN_MAX_ZIP_RATIO = env.float("LUMEN_MAX_ZIP_RATIO", default=200.0)
# Frames decoded at once while a run is imported: the import's memory is bounded by a few such batches.
LUMEN_INGEST_BATCH_FRAMES = env.int("LUMEN_INGEST_BATCH_FRAMES", default=16)
# One upload request (all its files): streamed to disk as it arrives, refused (413) beyond this.
LUMEN_MAX_UPLOAD_BYTES = env.int("LUMEN_MAX_UPLOAD_BYTES", default=20 * 1024**3)
# Any other request body (labels, drafts, settings): refused (413) at the ASGI layer beyond this, unread.
LUMEN_MAX_REQUEST_BYTES = env.int("LUMEN_MAX_REQUEST_BYTES", default=16 * 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FILES = env.int("LUMEN_MAX_UPLOAD_FILES", default=2000)
# Every uploaded file travels with its path as a form field: room for each, and a few fields more.
DATA_UPLOAD_MAX_NUMBER_FIELDS = DATA_UPLOAD_MAX_NUMBER_FILES + 100
FILE_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024
# Frame cache: web format of rendered frames, and the lossy codecs' quality (unset: JPEG 92, WebP 85; they keep the
# same detail, and JPEG decodes about four times faster, so a cine run's frames are all on screen sooner).
LUMEN_FRAME_FORMAT = env.str("LUMEN_FRAME_FORMAT", default="jpeg")
LUMEN_FRAME_QUALITY = env.int("LUMEN_FRAME_QUALITY", default=0)
# A cine run's frame 0 up to this many bytes travels in the label page itself (0: always a request of its own).
LUMEN_FIRST_FRAME_INLINE_MAX_BYTES = env.int("LUMEN_FIRST_FRAME_INLINE_MAX_BYTES", default=192 * 1024)
LUMEN_MAX_DRAFT_BYTES = env.int("LUMEN_MAX_DRAFT_BYTES", default=8 * 1024 * 1024)

REST_FRAMEWORK = {
    # Token first: a missing or bad token is then a 401 with `WWW-Authenticate: Token` (the browser's session
    # is used when no Authorization header is sent).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "annotation.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # JSON only: the interactive documentation is Swagger UI at /api/docs/.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "annotation.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [],
    # Anonymous calls (the token endpoint, refused requests) are throttled per client address; the token
    # endpoint has its own, tighter rate. Signed-in calls are not throttled (the annotator's hot path).
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.AnonRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("LUMEN_THROTTLE_ANON", default="120/min"),
        "login": env.str("LUMEN_THROTTLE_LOGIN", default="20/min"),
    },
    "EXCEPTION_HANDLER": "annotation.api.errors.exception_handler",
}
# API tokens (django-rest-knox, annotation/api/auth.py): one per login, sliding expiry, hard maximum age.
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=env.float("LUMEN_TOKEN_TTL_HOURS", default=10)),
    "AUTO_REFRESH": True,
    "AUTO_REFRESH_MAX_TTL": timedelta(hours=env.float("LUMEN_TOKEN_MAX_HOURS", default=24 * 7)),
    "MIN_REFRESH_INTERVAL": 60,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Lumen API",
    "DESCRIPTION": "Annotation and active learning for coronary imaging.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Two models have a "status": each its own named enum in the schema.
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "annotation.models.jobs.JobStatus",
        "ModelVersionStatusEnum": "annotation.models.learning.ModelStatus",
    },
}

# Ray: empty means "start a local Ray inside the worker"; set to ray://… or auto for a cluster.
RAY_ADDRESS = env.str("RAY_ADDRESS", default="")
# Learning jobs: "ray" runs them as Ray tasks (GPU when the cluster has one); "inline" on a thread of the worker.
LUMEN_LEARNING_BACKEND = env.str("LUMEN_LEARNING_BACKEND", default="ray")
LUMEN_RAY_NUM_CPUS = env.int("LUMEN_RAY_NUM_CPUS", default=None)
# Scoring fans out over this many Ray actors per job (0: one per CPU of the cluster, or per GPU share when it has
# GPUs); each actor asks for LUMEN_SCORING_GPU_SHARE of a GPU (small models share one).
LUMEN_SCORING_WORKERS = env.int("LUMEN_SCORING_WORKERS", default=0)
LUMEN_SCORING_GPU_SHARE = env.float("LUMEN_SCORING_GPU_SHARE", default=0.5)
# Items per scoring chunk: the unit of parallelism, of progress, and of what a crash can lose.
LUMEN_SCORE_CHUNK = env.int("LUMEN_SCORE_CHUNK", default=64)
# Data-parallel Ray Train workers per training job unless a project sets its own (`training_workers`); 1 trains on
# one device. Their epoch checkpoints go under MEDIA_ROOT/checkpoints (LUMEN_WORKER_MEDIA_ROOT on the workers).
LUMEN_TRAINING_WORKERS = env.int("LUMEN_TRAINING_WORKERS", default=1)
# Jobs one orchestrator runs at once (of different projects: a project's jobs run one after another).
LUMEN_ORCHESTRATOR_JOBS = env.int("LUMEN_ORCHESTRATOR_JOBS", default=2)
# A running job whose worker has not reported for this long is requeued (or failed after the last attempt).
LUMEN_JOB_STALE_SECONDS = env.int("LUMEN_JOB_STALE_SECONDS", default=300)
# The orchestrator writes its state here every few seconds; `manage.py healthcheck --orchestrator` (a container's
# liveness probe) reads it.
LUMEN_ORCHESTRATOR_STATUS_FILE = env.path(
    "LUMEN_ORCHESTRATOR_STATUS_FILE", default=LOCAL_DATA / "orchestrator-status.json"
)
# An open page's websocket reads new live events at least this often (at once when the channel layer wakes it).
LUMEN_LIVE_POLL_SECONDS = env.float("LUMEN_LIVE_POLL_SECONDS", default=1.0)
LUMEN_JOB_MAX_ATTEMPTS = env.int("LUMEN_JOB_MAX_ATTEMPTS", default=2)
# The uploader's file names in an import report (they may carry identifiers) are replaced by the files' positions
# this many days after the import ended; nothing else stores them.
LUMEN_IMPORT_NAMES_DAYS = env.float("LUMEN_IMPORT_NAMES_DAYS", default=7)
# The workers' housekeeping (forgetting old reports' file names, removing stored files no row refers to: what a
# worker killed between writing a file and committing its rows leaves) runs every this many minutes; such files
# go once this many hours old (never an import still running).
LUMEN_HOUSEKEEPING_MINUTES = env.float("LUMEN_HOUSEKEEPING_MINUTES", default=60)
LUMEN_ORPHAN_GRACE_HOURS = env.float("LUMEN_ORPHAN_GRACE_HOURS", default=24)

# LUMEN_LOG_FORMAT=json: one JSON object per line (time, level, logger, message, process) for a log pipeline.
LOG_FORMAT = env.str("LUMEN_LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LUMEN_LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(process)d",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("LUMEN_LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.request": {"level": "WARNING"},
        # Their debug and info lines carry request URLs and study UIDs, and a DICOMweb search's URL carries the
        # patient name or ID searched for: never logged.
        "dicomweb_client": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}
