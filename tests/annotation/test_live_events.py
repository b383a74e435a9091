"""Live events reach every open page from any process, and stop at once for users who may no longer hear them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.utils import timezone

from annotation.consumers import ProjectEventsConsumer
from annotation.models import LiveEvent, Role
from annotation.services.events import events_prune, leads_event_send, members_event_send
from annotation.services.projects import membership_remove, membership_set

pytestmark = pytest.mark.django_db(transaction=True)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def quick_polls(settings):
    settings.LUMEN_LIVE_POLL_SECONDS = 0.2


def connect(
    user, slug: str, *, after: int | None = None, session=None, consumer=ProjectEventsConsumer
) -> WebsocketCommunicator:
    query = f"?after={after}" if after is not None else ""
    communicator = WebsocketCommunicator(consumer.as_asgi(), f"/ws/projects/{slug}/{query}")
    communicator.scope["user"] = user
    communicator.scope["url_route"] = {"kwargs": {"slug": slug}}
    if session is not None:
        communicator.scope["session"] = session
    return communicator


async def heard(communicator, quiet: float = 0.6) -> list[dict]:
    events = []
    while not await communicator.receive_nothing(timeout=quiet):
        output = await communicator.receive_output()
        if output["type"] == "websocket.close":
            events.append({"closed": output.get("code")})
            break
        events.append(json.loads(output["text"]))
    return events


def test_an_event_written_without_a_wake_up_arrives_by_the_next_read(vessel_project, annotator):
    """As from another process without Redis: the row alone, no channel-layer message."""

    async def scenario():
        socket = connect(annotator, vessel_project.slug)
        assert (await socket.connect())[0]
        await database_sync_to_async(LiveEvent.objects.create)(
            project=vessel_project, payload={"event": "queue", "open": 7}
        )
        await database_sync_to_async(LiveEvent.objects.create)(
            project=vessel_project, leads_only=True, payload={"event": "job", "progress": 0.5}
        )
        events = await heard(socket)
        await socket.disconnect()
        return events

    events = async_to_sync(scenario)()
    assert [(e["event"], e["open"]) for e in events] == [("queue", 7)]  # not the leads-only job event


class RecordedConsumer(ProjectEventsConsumer):
    """The consumer, kept where a test can reach the instance a socket was served by, counting its reads."""

    made: list[RecordedConsumer] = []

    async def connect(self) -> None:
        self.reads = 0
        RecordedConsumer.made.append(self)
        await super().connect()

    async def _read(self):
        self.reads += 1
        return await super()._read()


def test_a_page_leaving_as_a_wake_up_arrives_ends_the_reader_at_once(vessel_project, annotator, settings):
    """The wake-up and the page leaving in the same instant: the reader stops, and reads nothing more.

    (Python 3.11's asyncio.wait_for returns the finished wait and drops a cancellation that lands just after
    the event was set: the reader went on reading for a page that had left.)
    """
    settings.LUMEN_LIVE_POLL_SECONDS = 30  # the reader waits on the wake-up alone, never on its timer

    async def scenario():
        communicator = connect(annotator, vessel_project.slug, consumer=RecordedConsumer)
        assert (await communicator.connect())[0]
        consumer = RecordedConsumer.made[-1]
        await asyncio.sleep(0.05)  # the reader is waiting for a wake-up
        consumer.woken.set()
        async with asyncio.timeout(5):
            await consumer.disconnect(1000)
        ended, reads = consumer.pump.done(), consumer.reads
        await communicator.disconnect()
        return ended, reads

    assert async_to_sync(scenario)() == (True, 0)


def test_removal_and_a_new_role_take_effect_at_once(vessel_project, lead, annotator):
    membership_set(project=vessel_project, user=annotator, role=Role.LEAD)

    async def scenario():
        socket = connect(annotator, vessel_project.slug)
        assert (await socket.connect())[0]
        await database_sync_to_async(leads_event_send)(vessel_project.pk, {"event": "job", "n": 1})
        as_lead = await heard(socket)
        await database_sync_to_async(membership_set)(project=vessel_project, user=annotator, role=Role.ANNOTATOR)
        await database_sync_to_async(leads_event_send)(vessel_project.pk, {"event": "job", "n": 2})
        await database_sync_to_async(members_event_send)(vessel_project.pk, {"event": "queue", "n": 3})
        as_annotator = await heard(socket)
        await database_sync_to_async(membership_remove)(project=vessel_project, user=annotator)
        await database_sync_to_async(members_event_send)(vessel_project.pk, {"event": "queue", "n": 4})
        removed = await heard(socket)
        return as_lead, as_annotator, removed

    as_lead, as_annotator, removed = async_to_sync(scenario)()
    assert [e["n"] for e in as_lead] == [1]
    assert [e["n"] for e in as_annotator] == [3]  # lead-only events stopped with the new role
    assert removed == [{"closed": 4403}]  # nothing more, the socket is closed


def test_a_logout_ends_the_socket_opened_with_that_session(vessel_project, annotator):
    session = SessionStore()
    session["_auth_user_id"] = str(annotator.pk)
    session.create()

    async def scenario():
        socket = connect(annotator, vessel_project.slug, session=SessionStore(session_key=session.session_key))
        assert (await socket.connect())[0]
        await database_sync_to_async(members_event_send)(vessel_project.pk, {"event": "queue", "n": 1})
        before = await heard(socket)
        await database_sync_to_async(session.flush)()  # what django.contrib.auth.logout does
        await database_sync_to_async(members_event_send)(vessel_project.pk, {"event": "queue", "n": 2})
        after = await heard(socket)
        return before, after

    before, after = async_to_sync(scenario)()
    assert [e["n"] for e in before] == [1] and after == [{"closed": 4403}]


def test_a_page_that_reconnects_resumes_after_the_last_event_it_saw(vessel_project, annotator):
    first = LiveEvent.objects.create(project=vessel_project, payload={"event": "queue", "open": 3})
    LiveEvent.objects.create(project=vessel_project, payload={"event": "queue", "open": 2})

    async def scenario():
        fresh, resumed = (
            connect(annotator, vessel_project.slug),
            connect(annotator, vessel_project.slug, after=first.pk),
        )
        assert (await fresh.connect())[0] and (await resumed.connect())[0]
        got = await heard(fresh), await heard(resumed)
        await fresh.disconnect()
        await resumed.disconnect()
        return got

    fresh, resumed = async_to_sync(scenario)()
    assert fresh == [] and [e["open"] for e in resumed] == [2]


def test_old_events_are_pruned(vessel_project):
    old = LiveEvent.objects.create(project=vessel_project, payload={"event": "queue"})
    LiveEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=2))
    LiveEvent.objects.create(project=vessel_project, payload={"event": "queue"})
    assert events_prune() == 1 and LiveEvent.objects.count() == 1


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="the other process needs the shared test database")
def test_an_event_from_another_process_reaches_the_socket(vessel_project, annotator):
    name = connection.settings_dict["NAME"]
    url = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + f"/{name}"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "webapp.settings.base"}
    env.pop("REDIS_URL", None)  # the embedded default: an in-memory layer that does not cross processes

    async def scenario():
        socket = connect(annotator, vessel_project.slug)
        assert (await socket.connect())[0]
        code = (
            "from annotation.services.events import members_event_send; "
            f"members_event_send({vessel_project.pk}, {{'event': 'queue', 'open': 41}})"
        )
        done = await database_sync_to_async(subprocess.run)(
            [sys.executable, "manage.py", "shell", "-c", code], cwd=REPO, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        events = await heard(socket)
        await socket.disconnect()
        return events

    assert [e["open"] for e in async_to_sync(scenario)()] == [41]
