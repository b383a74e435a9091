"""Websocket consumer for a project's live events (members only); the group name is shared with broadcasters."""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from annotation.models import Project
from annotation.selectors import project_role


def project_group(project_id: int) -> str:
    """Return the channel-layer group that carries a project's events."""
    return f"project-{project_id}"


class ProjectEventsConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        project_id = await self._member_project(user, self.scope["url_route"]["kwargs"]["slug"])
        if project_id is None:
            await self.close(code=4404)
            return
        self.group = project_group(project_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def project_event(self, event: dict) -> None:
        """Forward an event sent to the project's group to this browser."""
        await self.send_json(event["payload"])

    @database_sync_to_async
    def _member_project(self, user, slug: str) -> int | None:
        project = Project.objects.filter(slug=slug).first()
        if project is None or project_role(project, user) is None:
            return None
        return project.pk
