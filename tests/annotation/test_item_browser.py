"""The lead's item browser: every filter and sort, the rows it answers, bulk actions, and what excluding an item
does to the queue, gold and review hand-outs, training, scoring and the progress counters."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from annotation import selectors
from annotation.models import (
    Assignment,
    AssignmentKind,
    AssignmentState,
    Item,
    Label,
    ModelStatus,
    ModelVersion,
    Prediction,
    ProjectQueue,
    QueueEntry,
    ReviewItem,
    TrainingExample,
    WorkTally,
)
from annotation.services import item_next, item_skip, label_submit, project_update
from annotation.services.adjudication import review_request_create
from annotation.services.items import items_bulk_apply, items_exclude, items_include
from annotation.services.learning import training_request
from annotation.services.queue import item_gold_set, items_wanting_labels, queue_rerank, queue_set_order
from annotation.tasks import label_task
from annotation.training_data import training_set
from tests import dicom_samples as samples
from tests.annotation.test_ingest import run
from tests.annotation.test_slots import recount, stored
from tests.cohort_projects import label_vessel, vessel_cohort
from tests.factories import MembershipFactory, UserFactory
from tests.jobs import run_next_job

pytestmark = pytest.mark.django_db


def label(item, author, vessel, **payload):
    current = selectors.current_label(item, author)
    return label_submit(
        item=item,
        author=author,
        payload={"vessel": vessel, **payload},
        base_version=current.version if current else None,
    )


@pytest.fixture
def runs(vessel_project):
    """Eight imported runs, none in the overlap share, in one queue order."""
    project_update(project=vessel_project, settings={"overlap_rate": 0.0})
    run(vessel_project, *[(f"run{i}.dcm", samples.xa_bytes(seed=40 + i, frames=2, size=16)) for i in range(8)])
    items = list(vessel_project.items.order_by("pk"))
    queue_set_order(project=vessel_project, item_ids=[i.pk for i in items], strategy="manual")
    return items


@pytest.fixture
def world(runs, vessel_project, lead, annotator, second_annotator):
    """Runs in every state the browser names, and a champion that scored all but the last.

    0 train, LCA by the annotator · 1 train, RCA, sent back for review · 2 test, LCA vs RCA (disputed) ·
    3 validation, unusable · 4 skipped · 5 gold (the lead's LCA) · 6, 7 untouched (7 unscored).
    """
    splits = ["train", "train", "test", "validation", "", "", "", ""]
    for item, split in zip(runs, splits, strict=True):
        Item.objects.filter(pk=item.pk).update(split=split)
    label(runs[0], annotator, "LCA")
    label(runs[1], annotator, "RCA")
    label(runs[2], annotator, "LCA")
    label(runs[2], second_annotator, "RCA")
    label(runs[3], second_annotator, "unusable", unusable_reason="no contrast")
    item_skip(item=runs[4], annotator=annotator, reason="too dark")
    label(runs[5], lead, "LCA")
    item_gold_set(item=runs[5], by=lead, gold=True)
    review_request_create(project=vessel_project, annotator=annotator, requested_by=lead, item_ids=[runs[1].pk])
    champion = ModelVersion.objects.create(
        project=vessel_project, number=1, family="contrast_logreg", status=ModelStatus.CHAMPION
    )
    predicted = ["LCA", "LCA", "RCA", "neither", "RCA", "LCA", "RCA"]
    for rank, (item, vessel) in enumerate(zip(runs, predicted, strict=False)):
        Prediction.objects.create(
            item=item,
            model_version=champion,
            output={"vessel": vessel, "probabilities": {"LCA": 0.3, "RCA": 0.3, "neither": 0.4}},
            uncertainty=round(0.1 * (rank + 1), 2),
            confidence=0.5,
        )
    return runs


def listing(client, project, **params):
    response = client.get(reverse("api:project-items", args=[project.slug]), params)
    assert response.status_code == 200, response.content
    return response.json()


def ids(body) -> list[int]:
    return [row["id"] for row in body["results"]]


def positions(world, *indices) -> list[int]:
    return [world[i].pk for i in indices]


# ---------------------------------------------------------------------------------------------------- access
def test_annotators_are_refused_and_strangers_see_nothing(world, vessel_project, annotator, stranger, client_for):
    list_url = reverse("api:project-items", args=[vessel_project.slug])
    bulk_url = reverse("api:project-items-bulk", args=[vessel_project.slug])
    body = {"action": "exclude", "items": [world[0].pk]}
    assert client_for(annotator).get(list_url).status_code == 403
    assert client_for(annotator).post(bulk_url, body, format="json").status_code == 403
    assert client_for(stranger).get(list_url).status_code == 404
    assert client_for(stranger).post(bulk_url, body, format="json").status_code == 404
    assert client_for().get(list_url).status_code in (401, 403)
    assert not Item.objects.filter(excluded_at__isnull=False).exists()


# ---------------------------------------------------------------------------------------------------- rows
def test_each_row_says_status_labels_prediction_and_where_to_open_it(world, vessel_project, lead, client_for):
    rows = {row["id"]: row for row in listing(client_for(lead), vessel_project)["results"]}
    assert list(rows) == [item.pk for item in world]
    first, reviewed, disputed, unusable, skipped, gold, untouched, unscored = (rows[i.pk] for i in world)
    assert first["statuses"] == ["labelled"] and first["split"] == "train" and first["kind"] == "cine_run"
    assert [(lb["author"], lb["classes"], lb["version"]) for lb in first["labels"]] == [("annotator-user", ["LCA"], 1)]
    assert first["prediction"] == {"model_version": 1, "classes": ["LCA"], "uncertainty": 0.1, "confidence": 0.5}
    assert reviewed["statuses"] == ["labelled", "in_review"]
    assert disputed["statuses"] == ["labelled", "disputed"] and disputed["split"] == "test"
    assert sorted((lb["author"], lb["classes"][0]) for lb in disputed["labels"]) == [
        ("annotator-user", "LCA"),
        ("second-annotator", "RCA"),
    ]
    assert unusable["labels"][0]["classes"] == ["unusable"] and unusable["split"] == "validation"
    assert skipped["statuses"] == ["unlabelled", "skipped"] and skipped["split"] == "unassigned"
    assert gold["is_gold"] and gold["labels"][0]["author"] == "lead-user"
    assert untouched["statuses"] == ["unlabelled"] and untouched["labels_count"] == 0
    assert unscored["prediction"] is None and not unscored["excluded"]
    assert first["open_url"] == f"/projects/{vessel_project.slug}/label/?item={world[0].pk}"
    assert disputed["adjudicate_url"] == f"/projects/{vessel_project.slug}/adjudicate/{world[2].pk}/"
    assert all("patient" not in row and "pseudonym" not in str(row) for row in rows.values())


def test_a_page_costs_the_same_queries_however_many_rows(world, vessel_project, lead, client_for):
    client = client_for(lead)
    url = reverse("api:project-items", args=[vessel_project.slug])
    with CaptureQueriesContext(connection) as few:
        assert client.get(url, {"limit": 2}).status_code == 200
    with CaptureQueriesContext(connection) as many:
        assert client.get(url, {"limit": 8, "status": "labelled", "labelled_class": "LCA"}).status_code == 200
    assert len(many) <= len(few) + 2  # the two filters' own reads, not one per row


def test_paging_with_limit_and_offset(world, vessel_project, lead, client_for):
    body = listing(client_for(lead), vessel_project, limit=3, offset=3, ordering="id")
    assert body["count"] == 8 and ids(body) == positions(world, 3, 4, 5)
    assert body["next"] and body["previous"]


# ---------------------------------------------------------------------------------------------------- filters
@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"split": "train"}, [0, 1]),
        ({"split": "test"}, [2]),
        ({"split": "validation"}, [3]),
        ({"split": "unassigned"}, [4, 5, 6, 7]),
        ({"status": "unlabelled"}, [4, 6, 7]),
        ({"status": "labelled"}, [0, 1, 2, 3, 5]),
        ({"status": "skipped"}, [4]),
        ({"status": "in_review"}, [1]),
        ({"status": "disputed"}, [2]),
        ({"uncertainty_min": "0.3"}, [2, 3, 4, 5, 6]),
        ({"uncertainty_max": "0.2"}, [0, 1]),
        ({"uncertainty_min": "0.2", "uncertainty_max": "0.4"}, [1, 2, 3]),
        ({"predicted_class": "RCA"}, [2, 4, 6]),
        ({"predicted_class": "neither"}, [3]),
        ({"labelled_class": "LCA"}, [0, 2, 5]),
        ({"labelled_class": "RCA"}, [1, 2]),
        ({"labelled_class": "unusable"}, [3]),
        ({"annotator": "annotator-user"}, [0, 1, 2]),
        ({"annotator": "second-annotator"}, [2, 3]),
        ({"annotator": "lead-user"}, [5]),
        ({"is_gold": "true"}, [5]),
        ({"is_gold": "false"}, [0, 1, 2, 3, 4, 6, 7]),
        ({"status": "labelled", "split": "train", "labelled_class": "RCA"}, [1]),
        ({"status": "unlabelled", "predicted_class": "RCA"}, [4, 6]),
    ],
)
def test_filters(world, vessel_project, lead, client_for, params, expected):
    assert ids(listing(client_for(lead), vessel_project, **params)) == positions(world, *expected)


def test_the_excluded_filter_and_flag(world, vessel_project, lead, client_for):
    items_exclude(project=vessel_project, by=lead, item_ids=positions(world, 1, 6))
    client = client_for(lead)
    body = listing(client, vessel_project, excluded="true")
    assert ids(body) == positions(world, 1, 6)
    assert all(row["excluded"] and row["excluded_by"] == "lead-user" and row["excluded_at"] for row in body["results"])
    assert ids(listing(client, vessel_project, excluded="false")) == positions(world, 0, 2, 3, 4, 5, 7)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"split": "holdout"}, "split"),
        ({"status": "finished"}, "status"),
        ({"uncertainty_min": "lots"}, "uncertainty_min"),
        ({"predicted_class": "LAD"}, "predicted_class"),  # a SPECT class, not this task's
        ({"labelled_class": "calcium"}, "labelled_class"),
        ({"annotator": "nobody-here"}, "annotator"),
        ({"ordering": "patient"}, "ordering"),
        ({"is_gold": "maybe"}, "is_gold"),
        ({"limit": "0"}, "limit"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(world, vessel_project, lead, client_for, params, field):
    response = client_for(lead).get(reverse("api:project-items", args=[vessel_project.slug]), params)
    assert response.status_code == 400 and field in response.json(), response.content


def test_a_task_without_classes_refuses_class_filters(oct_project, lead, client_for):
    assert label_task(oct_project.task_type).class_names == ()
    response = client_for(lead).get(reverse("api:project-items", args=[oct_project.slug]), {"labelled_class": "x"})
    assert response.status_code == 400 and "labelled_class" in response.json()


# ---------------------------------------------------------------------------------------------------- sorting
@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("id", [0, 1, 2, 3, 4, 5, 6, 7]),
        ("-id", [7, 6, 5, 4, 3, 2, 1, 0]),
        ("created", [0, 1, 2, 3, 4, 5, 6, 7]),
        ("-created", [7, 6, 5, 4, 3, 2, 1, 0]),
        ("uncertainty", [0, 1, 2, 3, 4, 5, 6, 7]),  # the unscored run last
        ("-uncertainty", [6, 5, 4, 3, 2, 1, 0, 7]),  # … either way
        ("labels", [4, 6, 7, 0, 1, 3, 5, 2]),
        ("-labels", [2, 0, 1, 3, 5, 4, 6, 7]),
        ("last_labelled", [0, 1, 2, 3, 5, 4, 6, 7]),
        ("-last_labelled", [5, 3, 2, 1, 0, 4, 6, 7]),
        ("split", [4, 5, 6, 7, 2, 0, 1, 3]),
    ],
)
def test_sorting(world, vessel_project, lead, client_for, ordering, expected):
    assert ids(listing(client_for(lead), vessel_project, ordering=ordering)) == positions(world, *expected)


# ---------------------------------------------------------------------------------------------------- bulk
def bulk(client, project, action, items):
    return client.post(
        reverse("api:project-items-bulk", args=[project.slug]), {"action": action, "items": items}, format="json"
    )


def test_mark_and_unmark_gold_in_bulk(world, vessel_project, lead, client_for):
    client = client_for(lead)
    label(world[6], lead, "RCA")
    response = bulk(client, vessel_project, "mark_gold", positions(world, 5, 6, 7))
    assert response.status_code == 200, response.content
    assert response.json() == {
        "action": "mark_gold",
        "items": 3,
        "outcomes": {"marked_gold": 1, "already_gold": 1, "no_lead_label": 1},  # 7 carries no lead's label
    }
    assert set(Item.objects.filter(is_gold=True).values_list("pk", flat=True)) == set(positions(world, 5, 6))
    response = bulk(client, vessel_project, "unmark_gold", positions(world, 0, 5))
    assert response.json()["outcomes"] == {"unmarked_gold": 1, "not_gold": 1}
    assert list(Item.objects.filter(is_gold=True).values_list("pk", flat=True)) == positions(world, 6)


def test_send_to_review_in_bulk_returns_the_labels_to_their_authors(
    world, vessel_project, lead, annotator, second_annotator, client_for
):
    client = client_for(lead)
    # 1 already waits for the annotator's review; 5 carries only the lead's label; 6 has none.
    response = bulk(client, vessel_project, "send_to_review", positions(world, 0, 1, 2, 5, 6))
    assert response.status_code == 200, response.content
    assert response.json()["outcomes"] == {
        "sent_to_review": 2,
        "already_in_review": 1,
        "no_annotator_label": 2,
        "excluded": 0,
    }
    waiting = ReviewItem.objects.filter(resolved_at__isnull=True)
    assert sorted(waiting.filter(request__annotator=annotator).values_list("item_id", flat=True)) == positions(
        world, 0, 1, 2
    )
    assert list(waiting.filter(request__annotator=second_annotator).values_list("item_id", flat=True)) == positions(
        world, 2
    )
    assert all(r.requested_by == lead for r in {ri.request for ri in waiting})
    lease = item_next(project=vessel_project, annotator=second_annotator)
    assert lease.kind == AssignmentKind.REVIEW and lease.item_id == world[2].pk


def test_a_bulk_request_is_checked_before_anything_changes(world, vessel_project, lead, client_for):
    client = client_for(lead)
    other = UserFactory(username="other-lead")
    from tests.factories import ProjectFactory

    elsewhere = ProjectFactory(slug="elsewhere")
    MembershipFactory(project=elsewhere, user=other, role="lead")
    run(elsewhere, ("else.dcm", samples.xa_bytes(seed=99, frames=2, size=16)))
    foreign = elsewhere.items.get().pk
    response = bulk(client, vessel_project, "exclude", [world[0].pk, foreign, 10**12])
    assert response.status_code == 400
    assert response.json()["field"] == "items" and str(foreign) in response.json()["detail"]
    assert str(10**12) in response.json()["detail"]
    assert not Item.objects.filter(excluded_at__isnull=False).exists()
    response = bulk(client, vessel_project, "delete", [world[0].pk])
    assert response.status_code == 400 and "action" in response.json()
    response = bulk(client, vessel_project, "exclude", [])
    assert response.status_code == 400 and "items" in response.json()
    response = bulk(client, vessel_project, "exclude", list(range(1, 1002)))
    assert response.status_code == 400 and "items" in response.json()
    response = bulk(client, vessel_project, "exclude", ["one"])
    assert response.status_code == 400 and "items" in response.json()


def test_exclude_then_include_in_bulk_answers_counts(world, vessel_project, lead, client_for):
    client = client_for(lead)
    response = bulk(client, vessel_project, "exclude", positions(world, 6, 7, 7))
    assert response.json() == {"action": "exclude", "items": 2, "outcomes": {"excluded": 2, "already_excluded": 0}}
    response = bulk(client, vessel_project, "exclude", positions(world, 6, 5))
    assert response.json()["outcomes"] == {"excluded": 1, "already_excluded": 1}
    response = bulk(client, vessel_project, "include", positions(world, 0, 5, 6, 7))
    assert response.json()["outcomes"] == {"included": 3, "not_excluded": 1}
    assert not Item.objects.filter(excluded_at__isnull=False).exists()
    response = bulk(client, vessel_project, "send_to_review", positions(world, 0))
    assert response.json()["outcomes"]["sent_to_review"] == 1


# ---------------------------------------------------------------------------------------------------- exclusion
def counters_match_the_rows(project) -> None:
    assert ProjectQueue.objects.get(pk=project.pk).wanting_items == selectors.wanting_count(project.pk)
    for tally in WorkTally.objects.filter(project=project):
        counted = selectors.tally_count(project.pk, tally.annotator_id)
        assert {name: getattr(tally, name) for name in counted} == counted, tally.annotator_id
    assert stored() == recount()


def test_an_excluded_item_is_never_handed_out_and_comes_back_as_it_was(runs, vessel_project, lead, annotator):
    first, second = UserFactory(username="reader-1"), UserFactory(username="reader-2")
    for user in (first, second):
        MembershipFactory(project=vessel_project, user=user, role="annotator")
    target = runs[0]
    Item.objects.filter(pk=target.pk).update(required_labels=2, open_slots=2)  # an overlap item
    lease = item_next(project=vessel_project, annotator=first)
    assert lease.item_id == target.pk
    label_submit(item=target, author=first, payload={"vessel": "LCA"}, base_version=None)
    held = item_next(project=vessel_project, annotator=second)  # second's lease of its last place
    assert held.item_id == target.pk
    item_next(project=vessel_project, annotator=annotator)  # someone else's lease of runs[1]
    entry = QueueEntry.objects.get(item=target)

    assert items_exclude(project=vessel_project, by=lead, item_ids=[target.pk]) == {
        "excluded": 1,
        "already_excluded": 0,
    }
    target.refresh_from_db()
    assert target.excluded_at is not None and target.excluded_by == lead
    assert (target.open_slots, target.required_labels, target.labellers) == (0, 2, 1)
    assert Assignment.objects.get(pk=held.pk).state == AssignmentState.RELEASED  # its open lease ended
    assert Label.objects.filter(item=target).count() == 1  # the label stays
    counters_match_the_rows(vessel_project)
    # Nobody gets it: the reader whose lease ended gets the next run instead, and no one else gets it either.
    assert item_next(project=vessel_project, annotator=second).item_id != target.pk
    others = [UserFactory(username=f"late-{n}") for n in range(8)]
    for user in others:
        MembershipFactory(project=vessel_project, user=user, role="annotator")
    leases = [item_next(project=vessel_project, annotator=user) for user in others]
    assert leases[-1] is None  # the queue ran dry without ever offering it
    assert target.pk not in {lease.item_id for lease in leases if lease is not None}
    assert target.pk not in items_wanting_labels(vessel_project)
    assert (
        selectors.work_progress(vessel_project, second)["to_do"]
        == selectors.items_open_for(vessel_project, second).count()
    )
    counters_match_the_rows(vessel_project)

    assert items_include(project=vessel_project, by=lead, item_ids=[target.pk]) == {"included": 1, "not_excluded": 0}
    target.refresh_from_db()
    assert target.excluded_at is None and target.excluded_by is None
    assert (target.open_slots, target.required_labels, target.labellers) == (1, 2, 1)  # the place it had
    assert QueueEntry.objects.get(item=target).priority == entry.priority  # its place in the order too
    counters_match_the_rows(vessel_project)
    fresh = UserFactory(username="fresh-reader")
    MembershipFactory(project=vessel_project, user=fresh, role="annotator")
    assert item_next(project=vessel_project, annotator=fresh).item_id == target.pk  # first in the order again


def test_an_item_included_after_a_re_rank_goes_below_the_ranked_ones(runs, vessel_project, lead, annotator):
    target = runs[0]
    items_exclude(project=vessel_project, by=lead, item_ids=[target.pk])
    queue_rerank(project=vessel_project)
    assert not QueueEntry.objects.filter(item=target).exists()  # a ranking leaves excluded items out
    items_include(project=vessel_project, by=lead, item_ids=[target.pk])
    entries = dict(QueueEntry.objects.values_list("item_id", "priority"))
    assert entries[target.pk] < min(p for pk, p in entries.items() if pk != target.pk)
    assert ProjectQueue.objects.get(pk=vessel_project.pk).unranked_items == 1  # ranked on the next pass
    counters_match_the_rows(vessel_project)


def test_excluded_gold_and_review_items_are_not_handed_out(runs, vessel_project, lead, annotator):
    project_update(project=vessel_project, settings={"gold_rate": 1.0})
    gold = runs[0]
    label(gold, lead, "LCA")
    item_gold_set(item=gold, by=lead, gold=True)
    label(runs[1], annotator, "RCA")
    review_request_create(project=vessel_project, annotator=annotator, requested_by=lead, item_ids=[runs[1].pk])
    assert selectors.work_progress(vessel_project, annotator)["to_review"] == 1
    items_exclude(project=vessel_project, by=lead, item_ids=[gold.pk, runs[1].pk])
    assert selectors.work_progress(vessel_project, annotator)["to_review"] == 0
    lease = item_next(project=vessel_project, annotator=annotator)
    assert lease.kind == AssignmentKind.QUEUE and lease.item_id not in (gold.pk, runs[1].pk)
    items_include(project=vessel_project, by=lead, item_ids=[runs[1].pk])
    assert item_next(project=vessel_project, annotator=annotator, after=lease.item_id).kind == AssignmentKind.REVIEW


def test_labels_and_skips_of_excluded_items_keep_the_counters_right(runs, vessel_project, lead, annotator):
    """Work that lands on an excluded item (a submit whose lease ended, a skip) is kept and counted."""
    lease = item_next(project=vessel_project, annotator=annotator)
    items_exclude(project=vessel_project, by=lead, item_ids=[lease.item_id, runs[5].pk])
    label_submit(item=lease.item, author=annotator, payload={"vessel": "RCA"}, base_version=None)
    item_skip(item=runs[5], annotator=annotator, reason="blurred")
    assert Label.objects.filter(item=lease.item, author=annotator).exists()
    counters_match_the_rows(vessel_project)
    items_include(project=vessel_project, by=lead, item_ids=[lease.item_id, runs[5].pk])
    counters_match_the_rows(vessel_project)
    assert selectors.work_progress(vessel_project, annotator) == {
        "to_do": len(runs) - 2,
        "done": 1,
        "skipped": 1,
        "to_review": 0,
    }


def test_the_slot_invariant_holds_through_random_exclusions(vessel_project, lead, tmp_path):
    """Random leases, labels, skips, expiries, exclusions and inclusions: counters and slots equal a recount."""
    import random

    project_update(project=vessel_project, settings={"overlap_rate": 0.5})
    vessel_cohort(vessel_project, tmp_path / "xa", patients=3, runs=2, seed=31)
    people = [UserFactory(username=f"random-{n}") for n in range(3)]
    for user in people:
        MembershipFactory(project=vessel_project, user=user, role="annotator")
    rng = random.Random(5)
    done = []
    for step in range(80):
        items = list(vessel_project.items.order_by("pk"))
        user, item = rng.choice(people), rng.choice(items)
        action = rng.choice(["next+label", "next+label", "skip", "direct", "expire", "exclude", "include"])
        if action == "next+label":
            lease = item_next(project=vessel_project, annotator=user)
            if lease is not None:
                label(lease.item, user, rng.choice(["LCA", "RCA"]))
        elif action == "skip":
            item_skip(item=item, annotator=user, reason="blurred")
        elif action == "direct":
            label(item, user, "LCA")
        elif action == "expire":
            item_next(project=vessel_project, annotator=user)
            Assignment.objects.filter(state=AssignmentState.LEASED).update(
                expires_at=timezone.now() - timedelta(seconds=1)
            )
        elif action == "exclude":
            items_exclude(project=vessel_project, by=lead, item_ids=rng.sample([i.pk for i in items], 2))
        else:
            excluded = list(Item.objects.filter(excluded_at__isnull=False).values_list("pk", flat=True))
            items_include(project=vessel_project, by=lead, item_ids=excluded[:2])
        done.append(action)
        counters_match_the_rows(vessel_project)
        excluded = set(Item.objects.filter(excluded_at__isnull=False).values_list("pk", flat=True))
        leased = set(Assignment.objects.filter(state=AssignmentState.LEASED).values_list("item_id", flat=True))
        assert not excluded & leased, (step, action)
    assert {"exclude", "include", "next+label"} <= set(done)


@pytest.mark.usefixtures("judge_promotes")
def test_an_excluded_item_never_trains_and_is_never_scored(vessel_project, annotator, lead, tmp_path, executor):
    project_update(project=vessel_project, settings={"overlap_rate": 0.0})  # every label completes its run
    cohort = vessel_cohort(vessel_project, tmp_path / "xa", patients=8, runs=2)
    items = sorted(cohort, key=lambda item: item.pk)
    for item in items[4:]:
        label_vessel(item, annotator, cohort[item].vessel)
    labelled_out, unlabelled_out = items[5], items[0]
    items_exclude(project=vessel_project, by=lead, item_ids=[labelled_out.pk, unlabelled_out.pk])
    data = training_set(vessel_project)
    examples = {e.ref.item_id for e in (*data.train, *data.validation, *data.test)}
    assert labelled_out.pk not in examples and len(examples) == len(items) - 5

    training_request(project=vessel_project, by=lead, family="metadata_logreg")
    job = run_next_job(executor)
    assert job.status == "succeeded", job.error
    version = ModelVersion.objects.get(project=vessel_project)
    assert labelled_out.pk not in set(
        TrainingExample.objects.filter(model_version=version).values_list("item_id", flat=True)
    )
    score = run_next_job(executor)
    assert score.kind == "score" and score.status == "succeeded", score.error
    scored = set(Prediction.objects.filter(model_version=version).values_list("item_id", flat=True))
    assert scored == {item.pk for item in items[1:4]}  # the unlabelled runs but the excluded one
    assert unlabelled_out.pk not in set(QueueEntry.objects.values_list("item_id", flat=True))
    # Its labels are history: they stay, and including the item trains on them again.
    assert Label.objects.filter(item=labelled_out).exists()
    items_include(project=vessel_project, by=lead, item_ids=[labelled_out.pk])
    data = training_set(vessel_project)
    assert labelled_out.pk in {e.ref.item_id for e in (*data.train, *data.validation, *data.test)}


def test_a_bulk_action_is_one_live_event_for_the_leads(runs, vessel_project, lead):
    from annotation.models import LiveEvent

    items_bulk_apply(project=vessel_project, by=lead, action="exclude", item_ids=[runs[0].pk, runs[1].pk])
    event = LiveEvent.objects.filter(project=vessel_project).order_by("-pk").first()
    assert event.leads_only and event.payload == {
        "event": "items_changed",
        "action": "exclude",
        "outcomes": {"excluded": 2, "already_excluded": 0},
    }


# ---------------------------------------------------------------------------------------------------- classes
def test_each_task_says_which_classes_a_label_and_a_prediction_give():
    vessel, spect, oct_task = (label_task(name) for name in ("vessel_type", "spect_territory", "oct_calcium"))
    assert vessel.label_classes({"vessel": "unusable", "unusable_reason": "x"}) == ("unusable",)
    assert vessel.predicted_classes({"vessel": "RCA", "probabilities": {}}) == ("RCA",)
    normal = {"stress": [0] * 17, "rest": [0] * 17}
    lad = {"stress": [0] * 17, "rest": [0] * 17}
    for segment in (1, 7):  # two LAD segments scored 2: summed stress score 4, abnormal
        lad["stress"][segment - 1] = 2
    assert spect.label_classes(normal) == ("normal",)
    assert spect.label_classes(lad) == ("LAD",)
    overridden = {**normal, "flag_overrides": {"RCA": {"abnormal": True, "reason": "reader"}}}
    assert spect.label_classes(overridden) == ("RCA",)
    assert spect.predicted_classes({"abnormal": {"LAD": False, "RCA": True, "LCX": True}}) == ("RCA", "LCX")
    assert spect.predicted_classes({"abnormal": {"LAD": False, "RCA": False, "LCX": False}}) == ("normal",)
    assert oct_task.class_names == () and oct_task.label_classes({"mask": "…"}) == ()


# ---------------------------------------------------------------------------------------------------- page
def test_the_page_offers_the_tasks_own_filters_to_leads_only(oct_project, spect_project, lead, annotator, client):
    client.force_login(lead)
    spect_page = client.get(f"/projects/{spect_project.slug}/items/").content.decode()
    assert 'name="labelled_class"' in spect_page and '<option value="LAD">' in spect_page
    assert '<option value="annotator-user">' in spect_page
    oct_page = client.get(f"/projects/{oct_project.slug}/items/")
    assert oct_page.status_code == 200 and 'name="labelled_class"' not in oct_page.content.decode()
    assert (
        f'href="/projects/{oct_project.slug}/items/"' in client.get(f"/projects/{oct_project.slug}/").content.decode()
    )
    client.force_login(annotator)
    refused = client.get(f"/projects/{oct_project.slug}/items/")
    assert refused.status_code == 403 and "The item browser" in refused.content.decode()
    assert 'id="items-link"' not in client.get(f"/projects/{oct_project.slug}/").content.decode()
