"""Websocket consumer for a project's live events: members hear queue events, leads also jobs and models.

The consumer sends the project's `LiveEvent` rows after the last one it sent, read when the channel layer
wakes it and at least every `LUMEN_LIVE_POLL_SECONDS` (events from other processes arrive without Redis). Each
read first checks that the user may still hear them: still logged in (their session still holds them), still a
member (a role change takes effect at once); otherwise the socket is closed with 4403 and nothing more is sent.
`?after=<id>` resumes after the last event a page saw before it reconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Max

from annotation.models import LiveEvent, Project, Role
from annotation.selectors import project_role
from annotation.services.events import members_group, user_group

log = logging.getLogger(__name__)
BATCH = 200  # events sent per read; a long backlog is sent over several reads


class ProjectEventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        start = await self._start(user, self.scope["url_route"]["kwargs"]["slug"], self._after_asked())
        if start is None:
            await self.close(code=4404)
            return
        self.project_id, self.role, self.after = start
        self.groups_joined = [members_group(self.project_id), user_group(user.pk)]
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        self.woken = asyncio.Event()
        self.leaving = False
        await self.accept()
        self.pump = asyncio.create_task(self._pump())

    async def disconnect(self, code: int) -> None:
        self.leaving = True  # the reader stops at its next step even if the cancellation below is lost
        pump = getattr(self, "pump", None)
        if pump is not None and pump is not asyncio.current_task():
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def events_wake(self, message: dict) -> None:
        """A new event was committed, or this user's access changed: read now."""
        self.woken.set()

    async def _pump(self) -> None:
        try:
            await self._pump_events()
        except asyncio.CancelledError:
            raise
        except Exception:  # a broken read must not leave a page showing "live" while nothing arrives
            log.exception("live events for project %s stopped", self.project_id)
            await self.close(code=1011)

    async def _pump_events(self) -> None:
        poll = float(getattr(settings, "LUMEN_LIVE_POLL_SECONDS", 1.0))
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancellation that lands just after the
            # wake-up was set, and the reader would read on after the page left.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):
                    await self.woken.wait()
            if self.leaving:
                return
            self.woken.clear()
            events = await self._read()
            if events is None:  # logged out or no longer a member: not another event
                await self.close(code=4403)
                return
            for event in events:
                await self.send_json(event)

    def _after_asked(self) -> int | None:
        query = parse_qs((self.scope.get("query_string") or b"").decode("latin-1"))
        value = (query.get("after") or [""])[0]
        return int(value) if value.isdigit() else None

    @database_sync_to_async
    def _start(self, user, slug: str, after: int | None) -> tuple[int, str, int] | None:
        project = Project.objects.filter(slug=slug).first()
        role = project_role(project, user) if project is not None else None
        if project is None or role is None:
            return None
        newest = LiveEvent.objects.filter(project=project).aggregate(n=Max("id"))["n"] or 0
        return project.pk, role, newest if after is None else min(after, newest)

    @database_sync_to_async
    def _read(self) -> list[dict] | None:
        """Return the events after the last one sent that this user may hear, or None when they may no longer."""
        user = self.scope["user"]
        if not self._still_logged_in(user):
            return None
        role = project_role(Project(pk=self.project_id), user)
        if role is None:
            return None
        self.role = role
        rows = list(
            LiveEvent.objects.filter(project_id=self.project_id, pk__gt=self.after)
            .order_by("pk")
            .values_list("pk", "leads_only", "payload")[:BATCH]
        )
        if rows:
            self.after = rows[-1][0]
        return [{**payload, "id": pk} for pk, leads_only, payload in rows if role == Role.LEAD or not leads_only]

    def _still_logged_in(self, user) -> bool:
        """Whether the session the socket was opened with still holds this user (False after a logout)."""
        session = self.scope.get("session")
        key = getattr(session, "session_key", None)
        if session is None or key is None:
            return True  # not opened with a session (tests, other authentication): the membership check decides
        stored = session.__class__(session_key=key).load()
        if str(stored.get("_auth_user_id")) != str(user.pk):
            return False
        return get_user_model().objects.filter(pk=user.pk, is_active=True).exists()
