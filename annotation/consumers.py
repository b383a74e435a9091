"""Websocket consumer for a project's live events: members hear queue events, leads also jobs and models."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from annotation.models import Project, Role
from annotation.selectors import project_role
from annotation.services.events import leads_group, members_group


class ProjectEventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        membership = await self._membership(user, self.scope["url_route"]["kwargs"]["slug"])
        if membership is None:
            await self.close(code=4404)
            return
        project_id, role = membership
        self.groups_joined = [members_group(project_id)] + ([leads_group(project_id)] if role == Role.LEAD else [])
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def project_event(self, event: dict) -> None:
        """Forward an event sent to the project's group to this browser."""
        await self.send_json(event["payload"])

    @database_sync_to_async
    def _membership(self, user, slug: str) -> tuple[int, str] | None:
        project = Project.objects.filter(slug=slug).first()
        role = project_role(project, user) if project is not None else None
        return None if role is None else (project.pk, role)
