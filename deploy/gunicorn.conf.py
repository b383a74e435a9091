"""Production web serving: gunicorn runs several ASGI worker processes (uvicorn's worker class), so HTTP uses
every core and websockets work in each process. Run from the repository root:

    DJANGO_SETTINGS_MODULE=webapp.settings.production gunicorn -c deploy/gunicorn.conf.py webapp.asgi:application

Environment: LUMEN_BIND (default 127.0.0.1:8000), LUMEN_WEB_WORKERS (default: 2 per core, at least 2),
LUMEN_ACCESS_LOG (a path, or "-" for stdout; default off). Each worker holds its own PostgreSQL connection
pool (webapp.settings.production: LUMEN_DB_POOL_MIN / LUMEN_DB_POOL_MAX).
"""

import multiprocessing
import os

bind = os.environ.get("LUMEN_BIND", "127.0.0.1:8000")
# Django runs the (synchronous) API views of one ASGI process one at a time: processes give the concurrency.
workers = int(os.environ.get("LUMEN_WEB_WORKERS", max(2, 2 * multiprocessing.cpu_count())))
worker_class = "uvicorn_worker.UvicornWorker"
# Uploads and long-lived websockets: a worker is only restarted when it stops answering gunicorn's heartbeat.
timeout = 120
graceful_timeout = 30
keepalive = 5
accesslog = os.environ.get("LUMEN_ACCESS_LOG") or None
# Never log request bodies or query strings with identifiers: the access log format names path and status only.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
proc_name = "lumen-web"


def post_worker_init(worker) -> None:
    """Open the worker's database pool before it takes requests (webapp.warmup)."""
    from webapp.warmup import database_pool_open

    database_pool_open()
