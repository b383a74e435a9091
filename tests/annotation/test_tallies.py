"""Progress counts kept incrementally equal what counting the rows gives, after any sequence of queue actions."""

from __future__ import annotations

import random
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count, Exists, OuterRef
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotation import selectors
from annotation.models import Assignment, AssignmentState, Item, Label, ProjectQueue, Role, WorkTally
from annotation.services import item_next, item_skip, label_submit, project_update
from annotation.services.queue import assignment_release, leases_expire, queue_apply_overlap
from annotation.services.tallies import progress_recount
from tests.cohort_projects import vessel_cohort
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def counted_progress(project, user) -> dict[str, int]:
    """The progress an annotator sees, counted the slow way: every row of the project."""
    mine = Label.objects.filter(item=OuterRef("pk"), author=user, superseded_at__isnull=True)
    skipped = Assignment.objects.filter(item=OuterRef("pk"), annotator=user, state=AssignmentState.SKIPPED)
    current = Label.objects.filter(superseded_at__isnull=True)
    labellers = dict(
        current.filter(item__project=project).values("item").annotate(n=Count("author")).values_list("item", "n")
    )
    items = Item.objects.filter(project=project)
    open_ids = {pk for pk, required in items.values_list("pk", "required_labels") if labellers.get(pk, 0) < required}
    excused = set(items.filter(Exists(mine)).values_list("pk", flat=True)) | set(
        items.filter(Exists(skipped)).values_list("pk", flat=True)
    )
    return {
        "to_do": len(open_ids - excused),
        "done": items.filter(Exists(mine)).count(),
        "skipped": items.filter(Exists(skipped)).exclude(Exists(mine)).count(),
    }


def test_the_counters_match_the_rows_after_random_queue_actions(vessel_project, lead, annotator, tmp_path):
    project_update(project=vessel_project, settings={"overlap_rate": 0.5, "gold_rate": 0.0})
    vessel_cohort(vessel_project, tmp_path / "first", patients=5, runs=2, seed=21)
    others = [UserFactory(username=f"reader-{n}") for n in range(2)]
    for user in others:
        MembershipFactory(project=vessel_project, user=user, role=Role.ANNOTATOR)
    users = [lead, annotator, *others]
    rng = random.Random(7)
    actions = []
    for step in range(160):
        user = rng.choice(users)
        action = rng.choice(
            ["next+label", "next+label", "next+skip", "skip", "relabel", "direct", "release", "expire", "overlap"]
        )
        if step == 80:
            action = "import"
        items = list(vessel_project.items.order_by("pk"))
        if action.startswith("next"):
            lease = item_next(project=vessel_project, annotator=user)
            if lease is not None and action == "next+label":
                current = selectors.current_label(lease.item, user)
                label_submit(
                    item=lease.item,
                    author=user,
                    payload={"vessel": rng.choice(["LCA", "RCA"])},
                    base_version=current.version if current else None,
                )
            elif lease is not None:
                item_skip(item=lease.item, annotator=user, reason="cannot tell")
        elif action == "skip":
            item_skip(item=rng.choice(items), annotator=user, reason="blurred")
        elif action in ("relabel", "direct"):  # a new version of one's own label, or a first one without a lease
            item = rng.choice(items)
            current = selectors.current_label(item, user)
            label_submit(
                item=item,
                author=user,
                payload={"vessel": rng.choice(["LCA", "RCA"])},
                base_version=current.version if current else None,
            )
        elif action == "release":
            mine = Assignment.objects.filter(annotator=user, state=AssignmentState.LEASED).first()
            if mine is not None:
                assignment_release(item=mine.item, annotator=user)
        elif action == "expire":
            leases_expire(now=timezone.now() + timedelta(days=1))
        elif action == "overlap":
            project_update(project=vessel_project, settings={"overlap_rate": rng.choice([0.0, 0.5, 1.0])})
            queue_apply_overlap(project=vessel_project)
        elif action == "import":
            vessel_cohort(vessel_project, tmp_path / "second", patients=3, runs=2, seed=22)
        actions.append(action)
        for who in users:
            shown = selectors.work_progress(vessel_project, who)
            assert {k: shown[k] for k in ("to_do", "done", "skipped")} == counted_progress(vessel_project, who), (
                step,
                action,
                who.username,
            )
            assert shown["to_do"] == selectors.items_open_for(vessel_project, who).count()
        stored = ProjectQueue.objects.get(pk=vessel_project.pk).wanting_items
        assert stored == selectors.wanting_count(vessel_project.pk)
        for tally in WorkTally.objects.filter(project=vessel_project):
            counted = selectors.tally_count(vessel_project.pk, tally.annotator_id)
            assert {k: getattr(tally, k) for k in counted} == counted, (step, action)
    assert {"next+label", "next+skip", "skip", "relabel", "direct", "import"} <= set(actions)
    assert Label.objects.filter(item__project=vessel_project, superseded_at__isnull=False).exists()
    assert WorkTally.objects.filter(project=vessel_project).count() == len(users)
    assert progress_recount(project=vessel_project)["items_fixed"] == 0
    assert progress_recount(project=vessel_project)["tallies_fixed"] == 0


def test_recount_repairs_counters_a_bulk_load_left_behind(vessel_project, annotator, tmp_path):
    cohort = vessel_cohort(vessel_project, tmp_path / "xa", patients=3, runs=2, seed=23)
    # An item wanting one label: one in the overlap share (drawn from its id, which PostgreSQL's sequences make
    # differ from run to run) would still want a second label after this one.
    item = Item.objects.filter(project=vessel_project, required_labels=1).order_by("pk").first()
    label_submit(item=item, author=annotator, payload={"vessel": "LCA"}, base_version=None)
    Item.objects.filter(project=vessel_project).update(labellers=0)  # as rows COPY-loaded around the services
    ProjectQueue.objects.filter(pk=vessel_project.pk).update(wanting_items=None)
    WorkTally.objects.filter(project=vessel_project).update(done=40, excused=9)
    report = progress_recount(project=vessel_project)
    assert report == {"items_fixed": 1, "tallies_fixed": 1, "wanting_items": len(cohort) - 1}
    assert selectors.work_progress(vessel_project, annotator) == {
        "to_do": len(cohort) - 1,
        "done": 1,
        "skipped": 0,
        "to_review": 0,
    }


def test_progress_costs_the_same_few_queries_however_large_the_project(vessel_project, annotator, tmp_path):
    vessel_cohort(vessel_project, tmp_path / "xa", patients=2, runs=2, seed=24)
    item_next(project=vessel_project, annotator=annotator)  # the first hand-out stores the tally
    with CaptureQueriesContext(connection) as small:
        selectors.work_progress(vessel_project, annotator)
    assert len(small.captured_queries) == 1  # the tally, the project's wanting items and open reviews at once
    assert all("annotation_label" not in q["sql"] for q in small.captured_queries)


def test_the_recount_command_names_what_it_corrected(vessel_project, annotator, tmp_path):
    from io import StringIO

    from django.core.management import CommandError, call_command

    # No overlap share: whether the labelled item wants a second label would depend on its id.
    project_update(project=vessel_project, settings={"overlap_rate": 0.0})
    cohort = vessel_cohort(vessel_project, tmp_path / "xa", patients=2, runs=2, seed=25)
    label_submit(item=next(iter(cohort)), author=annotator, payload={"vessel": "RCA"}, base_version=None)
    Item.objects.filter(project=vessel_project).update(labellers=0)
    out = StringIO()
    call_command("recount_progress", vessel_project.slug, stdout=out)
    assert out.getvalue().strip() == (
        f"{vessel_project.slug}: 1 item count(s) and 0 annotator tally(ies) corrected; {len(cohort) - 1} item(s) "
        "want labels"
    )
    with pytest.raises(CommandError, match="no project with slug 'nope'"):
        call_command("recount_progress", "nope")
    with pytest.raises(CommandError, match="at least one project slug"):
        call_command("recount_progress")


def test_counting_a_tally_reads_the_annotators_rows_not_the_projects_items(vessel_project, annotator, tmp_path):
    # No overlap share: a labelled item wants no second label, so it is not counted as excused.
    project_update(project=vessel_project, settings={"overlap_rate": 0.0})
    vessel_cohort(vessel_project, tmp_path / "xa", patients=2, runs=3, seed=26)
    first = item_next(project=vessel_project, annotator=annotator)
    label_submit(item=first.item, author=annotator, payload={"vessel": "LCA"}, base_version=None)
    second = item_next(project=vessel_project, annotator=annotator)
    item_skip(item=second.item, annotator=annotator, reason="blurred")
    item_next(project=vessel_project, annotator=annotator)
    with CaptureQueriesContext(connection) as reads:
        counted = selectors.tally_count(vessel_project.pk, annotator.pk)
    # One label, one skipped item that still wants a label, three hand-outs (one still open).
    assert counted == {"done": 1, "skipped": 1, "excused": 1, "handouts": 3, "gold_handouts": 0}
    assert counted == {name: getattr(WorkTally.objects.get(annotator=annotator), name) for name in counted}
    # Every read starts from the annotator's labels or assignments, or counts items by their ids: none goes
    # through the project's items (a scan of a million rows in a large project, on a new annotator's first next).
    for query in reads.captured_queries:
        outer = re.search(r'FROM "(\w+)"', query["sql"]).group(1)
        assert outer in ("annotation_label", "annotation_assignment") or '"annotation_item"."id" IN (' in query["sql"]
