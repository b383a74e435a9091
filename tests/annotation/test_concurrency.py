"""Concurrent writers against PostgreSQL: one edit wins, the rest conflict; one import of a file wins; an import
and a re-rank under the project lock both finish."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction

from annotation.ingest.results import Outcome
from annotation.models import Instance, Item, ItemKind, Label, Project, QueueEntry
from annotation.services import LabelConflict, import_run, label_submit
from annotation.services.queue import queue_add_items, queue_rerank
from tests import dicom_samples as samples
from tests.annotation.test_ingest import source

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "connection.vendor != 'postgresql'", reason="needs PostgreSQL row locking (CI sets DATABASE_URL)"
    ),
]
WORKERS = 8


def in_threads(work) -> list:
    results: list = [None] * WORKERS
    barrier = threading.Barrier(WORKERS)

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except Exception as exc:  # noqa: BLE001 - the test inspects what each thread got
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_concurrent_edits_of_one_version_never_overwrite(vessel_project, annotator):
    import_run(project=vessel_project, sources=[source("run.dcm", samples.xa_bytes())])
    item = vessel_project.items.get()
    label_submit(item=item, author=annotator, payload={"vessel": "LCA"}, base_version=None)
    choices = ["RCA", "neither"]
    results = in_threads(
        lambda i: label_submit(item=item, author=annotator, payload={"vessel": choices[i % 2]}, base_version=1)
    )
    winners = [r for r in results if isinstance(r, Label)]
    assert len(winners) == 1, results
    assert all(isinstance(r, LabelConflict) for r in results if r not in winners)
    versions = list(Label.objects.filter(item=item).order_by("version").values_list("version", "superseded_at"))
    assert [v for v, _ in versions] == [1, 2] and versions[0][1] is not None and versions[1][1] is None


def test_concurrent_first_labels_make_one_version(vessel_project, annotator):
    import_run(project=vessel_project, sources=[source("run.dcm", samples.xa_bytes())])
    item = vessel_project.items.get()
    results = in_threads(
        lambda i: label_submit(item=item, author=annotator, payload={"vessel": "LCA"}, base_version=None)
    )
    assert sum(isinstance(r, Label) for r in results) == 1
    assert Label.objects.filter(item=item).count() == 1


def test_the_same_file_imported_at_once_is_stored_once(vessel_project):
    data = samples.xa_bytes(seed=77)
    results = in_threads(lambda i: import_run(project=vessel_project, sources=[source(f"copy{i}.dcm", data)]))
    outcomes = sorted(str(r.files[0].outcome) for r in results)
    assert outcomes.count(str(Outcome.STORED)) == 1, outcomes
    assert outcomes.count(str(Outcome.DUPLICATE)) == WORKERS - 1
    assert Instance.objects.count() == 1 and vessel_project.items.count() == 1
    assert connection.vendor == "postgresql"


def test_concurrent_next_item_calls_never_lease_an_item_twice(vessel_project):
    from annotation.models import Assignment, Membership, Role
    from annotation.services import item_next, project_update
    from tests.factories import UserFactory

    # No overlap share: with it, two annotators may rightly hold the same item (the draw depends on item ids).
    project_update(project=vessel_project, settings={"overlap_rate": 0.0})
    import_run(project=vessel_project, sources=[source(f"r{i}.dcm", samples.xa_bytes(seed=i)) for i in range(12)])
    annotators = [UserFactory(username=f"racer{i}") for i in range(WORKERS)]
    for user in annotators:
        Membership.objects.create(project=vessel_project, user=user, role=Role.ANNOTATOR)
    results = in_threads(lambda i: item_next(project=vessel_project, annotator=annotators[i]))
    assert all(isinstance(r, Assignment) for r in results), results
    leased = [r.item_id for r in results]
    assert len(set(leased)) == WORKERS
    assert Assignment.objects.filter(state="leased").count() == WORKERS


def test_many_annotators_leasing_at_once_never_share_an_item_and_lose_none(vessel_project):
    """16 annotators pull, label, skip and release against PostgreSQL until the queue is empty."""
    from collections import Counter

    from annotation.models import Assignment, AssignmentState, Item, Role
    from annotation.services import assignment_release, item_next, item_skip, project_update
    from annotation.services.queue import queue_open_count
    from tests.factories import MembershipFactory, UserFactory

    project_update(project=vessel_project, settings={"overlap_rate": 0.25})
    vessel_project.refresh_from_db()
    import_run(
        project=vessel_project,
        sources=[source(f"r{i}.dcm", samples.xa_bytes(seed=i, frames=2, size=16)) for i in range(60)],
    )
    users = []
    for i in range(16):
        user = UserFactory(username=f"concurrent-{i}")
        MembershipFactory(project=vessel_project, user=user, role=Role.ANNOTATOR)
        users.append(user)
    barrier = threading.Barrier(len(users))
    errors: list = []

    def annotate(user) -> None:
        try:
            barrier.wait()
            rounds = 0
            while (lease := item_next(project=vessel_project, annotator=user)) is not None:
                rounds += 1
                item = lease.item
                if rounds % 7 == 3:
                    assignment_release(item=item, annotator=user)  # back to the queue
                elif rounds % 11 == 5:
                    item_skip(item=item, annotator=user, reason="unclear")
                else:
                    label_submit(item=item, author=user, payload={"vessel": "LCA"}, base_version=None)
        except Exception as exc:  # noqa: BLE001 — collected and asserted below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=annotate, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    labels = Counter(Label.objects.filter(item__project=vessel_project).values_list("item_id", flat=True))
    for item in Item.objects.filter(project=vessel_project):
        # No item leased beyond its slots: never more labels than it needs; none lost: every item got them all.
        assert labels[item.pk] == item.required_labels, (item.pk, labels[item.pk], item.required_labels)
        assert item.open_slots == 0
    pairs = Label.objects.filter(item__project=vessel_project).values_list("item_id", "author_id")
    assert len(set(pairs)) == len(pairs)  # never twice to one annotator
    assert not Assignment.objects.filter(item__project=vessel_project, state=AssignmentState.LEASED).exists()
    assert queue_open_count(vessel_project) == 0
    assert Item.objects.filter(project=vessel_project, required_labels=2).exists()
    # The progress counters kept under this concurrency equal what counting the rows gives.
    from annotation.models import ProjectQueue, WorkTally
    from annotation.selectors import tally_count, wanting_count

    assert ProjectQueue.objects.get(pk=vessel_project.pk).wanting_items == wanting_count(vessel_project.pk) == 0
    tallies = WorkTally.objects.filter(project=vessel_project)
    assert tallies.count() == len(users)
    for tally in tallies:
        counted = tally_count(vessel_project.pk, tally.annotator_id)
        assert {name: getattr(tally, name) for name in counted} == counted, tally.annotator_id


def test_skips_racing_the_labels_that_close_an_item_keep_the_counters_exact(vessel_project):
    """Half the threads label items that need one more label, half skip the same items without a lease."""
    from annotation.models import ProjectQueue, Role, WorkTally
    from annotation.selectors import tally_count, wanting_count
    from annotation.services import item_skip, project_update
    from tests.factories import MembershipFactory, UserFactory

    project_update(project=vessel_project, settings={"overlap_rate": 0.0})
    import_run(
        project=vessel_project,
        sources=[source(f"s{i}.dcm", samples.xa_bytes(seed=100 + i, frames=2, size=16)) for i in range(6)],
    )
    items = list(vessel_project.items.order_by("pk"))
    users = [UserFactory(username=f"racer-{i}") for i in range(WORKERS)]
    for user in users:
        MembershipFactory(project=vessel_project, user=user, role=Role.ANNOTATOR)

    def work(index: int):
        for item in items:
            if index % 2:
                item_skip(item=item, annotator=users[index], reason="unclear")
            else:
                try:
                    label_submit(item=item, author=users[index], payload={"vessel": "RCA"}, base_version=None)
                except LabelConflict:
                    pass
        return True

    results = in_threads(work)
    assert all(r is True for r in results), results
    assert ProjectQueue.objects.get(pk=vessel_project.pk).wanting_items == wanting_count(vessel_project.pk)
    for tally in WorkTally.objects.filter(project=vessel_project):
        counted = tally_count(vessel_project.pk, tally.annotator_id)
        assert {name: getattr(tally, name) for name in counted} == counted, tally.annotator_id


def test_an_import_committing_beside_a_rerank_under_the_project_lock_does_not_deadlock(vessel_project):
    """Seen in benchmarks.al_http: a scoring job held the project row and waited for the queue row, which an import
    held; the import's commit then checked its queue entries' foreign key to the project (FOR KEY SHARE), and with
    the project locked FOR UPDATE PostgreSQL found a deadlock and failed the imported file."""
    import_run(project=vessel_project, sources=[source("run.dcm", samples.xa_bytes(seed=5))])
    patient = vessel_project.items.get().patient
    import_holds_queue, rerank_holds_project = threading.Event(), threading.Event()
    errors: list[Exception] = []

    def importer() -> None:
        try:
            with transaction.atomic():
                item = Item.objects.create(project=vessel_project, kind=ItemKind.CINE_RUN, patient=patient, title="new")
                queue_add_items(project=vessel_project, item_ids=[item.pk])  # locks the queue row, adds entries
                import_holds_queue.set()
                rerank_holds_project.wait(10)
                time.sleep(0.5)  # the re-rank is now waiting for the queue row
            # commit: the entries' foreign key to the project is checked here
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)
        finally:
            connections.close_all()

    def rerank() -> None:
        try:
            import_holds_queue.wait(10)
            with transaction.atomic():
                Project.objects.lock(vessel_project.pk)  # as scoring_finish does before promoting and re-ranking
                rerank_holds_project.set()
                queue_rerank(project=vessel_project)
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=importer), threading.Thread(target=rerank)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert QueueEntry.objects.filter(project=vessel_project, item__title="new").exists()
