"""Live events to a project's websocket groups, sent only once the current transaction commits.

Members (annotators and leads) hear about the queue: its size and a new ranking. Leads alone hear about
jobs and models (progress bars, promotions), which carry metrics annotators need not see.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)


def members_group(project_id: int) -> str:
    """Return the channel-layer group every member of the project joins."""
    return f"project-{project_id}"


def leads_group(project_id: int) -> str:
    """Return the channel-layer group only the project's leads join."""
    return f"project-{project_id}-leads"


def _send_after_commit(group: str, payload: dict[str, Any]) -> None:
    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        message = {"type": "project.event", "payload": payload}
        try:
            if _loop_running():  # called from code under a running event loop: send from a thread of its own
                sender = threading.Thread(target=asyncio.run, args=(layer.group_send(group, message),))
                sender.start()
                sender.join(timeout=5)
            else:
                async_to_sync(layer.group_send)(group, message)
        except Exception as error:  # noqa: BLE001 — a dropped live update must never fail the work itself
            log.warning("project event not sent: %s", error)

    transaction.on_commit(send)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def members_event_send(project_id: int, payload: dict[str, Any]) -> None:
    """Send an event to every member of the project once the current transaction commits."""
    _send_after_commit(members_group(project_id), payload)


def leads_event_send(project_id: int, payload: dict[str, Any]) -> None:
    """Send an event to the project's leads once the current transaction commits."""
    _send_after_commit(leads_group(project_id), payload)
