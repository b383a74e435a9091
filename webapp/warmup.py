"""What a web worker prepares while it starts, so that no user's first request in that worker pays for it."""

from __future__ import annotations


def urls_warm() -> None:
    """Build the reverse tables of every URL resolver, namespaces included.

    Django builds them on the first `reverse()` in each process, and a namespace's on the first `reverse()` into
    it (its resolver is a cached copy made then): about 30 ms of the first `next` a worker answers, which names
    the workspace and action URLs of the item it hands out.
    """
    from django.urls import NoReverseMatch, get_resolver, reverse

    def walk(resolver, prefix: str) -> None:
        for namespace, (_, child) in resolver.namespace_dict.items():
            names = [name for name in child.reverse_dict if isinstance(name, str)]
            if names:
                try:
                    reverse(f"{prefix}{namespace}:{names[0]}")
                except NoReverseMatch:  # it takes arguments: the tables are built all the same
                    pass
            walk(child, f"{prefix}{namespace}:")

    walk(get_resolver(), "")


def database_pool_open() -> None:
    """Open this process's database connection pool (its `min_size` connections) and hand the connection back.

    With the production settings' psycopg pool, the first request of each worker otherwise waits for the pool to
    open. Called from gunicorn's `post_worker_init` (`deploy/gunicorn.conf.py`), never at import: importing the
    application must not need a database.
    """
    from django.db import connections

    for connection in connections.all(initialized_only=False):
        connection.ensure_connection()
        connection.close()  # with a pool: back to the pool, still open
