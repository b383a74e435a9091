"""Live events of a project, written to the database in the transaction of the change they report.

Members (annotators and leads) hear about the queue: its size and a new ranking. Leads alone hear about
jobs and models (progress bars, promotions), which carry metrics annotators need not see.

Each event is a `LiveEvent` row, visible once its transaction commits. Every open websocket reads the rows
after the last one it sent (`annotation.consumers`), at least every `LUMEN_LIVE_POLL_SECONDS`, so an event
written in any process reaches every page: with the embedded defaults (no Redis: the in-memory channel layer
does not cross processes) as with Redis. After the commit a wake-up goes over the channel layer, which lets
consumers that hear it (all of them with Redis; those in the same process without) read at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import timezone

from annotation.models import LiveEvent

log = logging.getLogger(__name__)

KEEP_EVENTS = timedelta(hours=1)  # a page away longer than this reloads what it shows anyway


def members_group(project_id: int) -> str:
    """Return the channel-layer group every member's socket of the project joins."""
    return f"project-{project_id}"


def user_group(user_id: int) -> str:
    """Return the channel-layer group every socket of one user joins (told when their access changes)."""
    return f"user-{user_id}"


def wake(group: str) -> None:
    """Tell the sockets of a group to read new events (and re-check access) now; never fails the caller."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "events.wake"}
    try:
        if _loop_running():  # called from code under a running event loop: send from a thread of its own
            sender = threading.Thread(target=asyncio.run, args=(layer.group_send(group, message),))
            sender.start()
            sender.join(timeout=5)
        else:
            async_to_sync(layer.group_send)(group, message)
    except Exception as error:  # noqa: BLE001 — a late wake-up only delays an event to the next poll
        log.warning("live wake-up not sent: %s", error)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _event_write(project_id: int, payload: dict[str, Any], leads_only: bool) -> None:
    try:
        with transaction.atomic():  # a savepoint: a failed write must not break the caller's transaction
            LiveEvent.objects.create(project_id=project_id, leads_only=leads_only, payload=payload)
    except Exception as error:  # noqa: BLE001 — a dropped live update must never fail the work itself
        log.warning("project event not stored: %s", error)
        return
    transaction.on_commit(lambda: wake(members_group(project_id)))


def members_event_send(project_id: int, payload: dict[str, Any]) -> None:
    """Send an event to every member of the project once the current transaction commits."""
    _event_write(project_id, payload, leads_only=False)


def leads_event_send(project_id: int, payload: dict[str, Any]) -> None:
    """Send an event to the project's leads once the current transaction commits."""
    _event_write(project_id, payload, leads_only=True)


def events_prune(*, now=None) -> int:
    """Delete events older than KEEP_EVENTS; return how many."""
    cutoff = (now or timezone.now()) - KEEP_EVENTS
    return LiveEvent.objects.filter(created_at__lt=cutoff).delete()[0]
