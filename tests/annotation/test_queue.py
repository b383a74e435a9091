"""The labelling queue: order by the strategy over stored scores, cold start, leases, overlap, gold, expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotation.models import (
    Assignment,
    AssignmentState,
    Item,
    Label,
    ModelStatus,
    ModelVersion,
    Prediction,
    ProjectQueue,
    QueueEntry,
    Role,
)
from annotation.project_settings import SettingsError
from annotation.services import (
    WorkspaceInputError,
    assignment_release,
    item_gold_set,
    item_next,
    item_skip,
    label_submit,
    leases_expire,
    project_update,
)
from annotation.services.queue import (
    items_wanting_labels,
    queue_open_count,
    queue_order,
    queue_rerank,
    queue_set_order,
    wants_overlap,
)
from annotation.services.splits import splits_configure
from tests import dicom_samples as samples
from tests.annotation.test_ingest import run
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def annotators(project, n: int) -> list:
    users = []
    for i in range(n):
        user = UserFactory(username=f"queue-annotator-{i}")
        MembershipFactory(project=project, user=user, role=Role.ANNOTATOR)
        users.append(user)
    return users


@pytest.fixture
def runs(vessel_project):
    """Eight imported XA runs, none in the overlap share."""
    project_update(project=vessel_project, settings={"overlap_rate": 0.0})
    vessel_project.refresh_from_db()
    run(vessel_project, *[(f"run{i}.dcm", samples.xa_bytes(seed=i)) for i in range(8)])
    return list(vessel_project.items.order_by("pk"))


def champion_with_scores(project, entropy: dict[int, float], margin: dict[int, float] | None = None) -> ModelVersion:
    """Store a champion whose predictions carry these entropy (and margin) scores."""
    version = ModelVersion.objects.create(
        project=project, number=1, family="metadata_mlp", status=ModelStatus.CHAMPION, weights_path="w.pt"
    )
    Prediction.objects.bulk_create(
        Prediction(
            item_id=item_id,
            model_version=version,
            output={},
            uncertainty=value,
            uncertainty_detail={"entropy": value, "margin": (margin or {}).get(item_id, 0.0)},
            confidence=1 - value,
            embedding=[float(item_id), 0.0],
        )
        for item_id, value in entropy.items()
    )
    return version


def lease_all(project, annotator) -> list[int]:
    """Lease and label (LCA) one item after another until the queue is empty; return the item ids in order."""
    order = []
    while (lease := item_next(project=project, annotator=annotator)) is not None:
        order.append(lease.item_id)
        label_submit(item=lease.item, author=annotator, payload={"vessel": "LCA"}, base_version=None)
    return order


# ---------------------------------------------------------------------------------------------------- order
def test_imported_items_join_the_queue_and_a_cold_start_orders_them_all(runs, vessel_project, annotator):
    queue = ProjectQueue.objects.get(project=vessel_project)
    assert queue.unranked_items == 8 and QueueEntry.objects.filter(project=vessel_project).count() == 8
    ranked = queue_rerank(project=vessel_project, version=None, seed=3)
    assert ranked.strategy == "cold_start" and ranked.ranked_items == 8 and ranked.unranked_items == 0
    again, _ = queue_order(vessel_project, None, seed=3)
    assert sorted(again) == [item.pk for item in runs]
    assert lease_all(vessel_project, annotator) == again  # served exactly in the ranked order
    assert queue_open_count(vessel_project) == 0


def test_the_strategy_orders_the_queue_over_the_champions_stored_scores(runs, vessel_project, annotator):
    splits_configure(project=vessel_project, test_fraction=0.0)  # no held-out items: the strategy orders all
    entropy = {item.pk: 0.1 * (i % 5) + 0.01 * i for i, item in enumerate(runs)}
    version = champion_with_scores(vessel_project, entropy)
    queue = queue_rerank(project=vessel_project, version=version)
    assert (queue.strategy, queue.model_version) == ("entropy", version)
    by_entropy = sorted(entropy, key=lambda pk: -entropy[pk])
    assert lease_all(vessel_project, annotator) == by_entropy


def test_changing_the_strategy_reorders_and_unscored_items_follow_in_cold_start_order(runs, vessel_project):
    scored = runs[:5]
    entropy = {item.pk: 0.5 for item in scored}
    margin = {item.pk: 0.1 * i for i, item in enumerate(scored)}
    version = champion_with_scores(vessel_project, entropy, margin)
    project_update(project=vessel_project, settings={"acquisition_strategy": "margin"})
    vessel_project.refresh_from_db()
    ordered, name = queue_order(vessel_project, version)
    assert name == "margin"
    assert ordered[:5] == [item.pk for item in reversed(scored)]  # highest margin score first
    assert sorted(ordered[5:]) == [item.pk for item in runs[5:]]


def test_a_rerank_switches_generations_at_once_and_drops_the_old_rows(runs, vessel_project):
    first = queue_set_order(project=vessel_project, item_ids=[r.pk for r in runs], strategy="manual")
    second = queue_set_order(project=vessel_project, item_ids=[r.pk for r in reversed(runs)], strategy="manual")
    assert second.generation == first.generation + 1
    entries = QueueEntry.objects.filter(project=vessel_project)
    assert set(entries.values_list("generation", flat=True)) == {second.generation}
    top = entries.order_by("-priority").values_list("item_id", flat=True).first()
    assert top == runs[-1].pk


def test_only_items_still_wanting_labels_are_ranked(runs, vessel_project, annotator, lead):
    label_submit(item=runs[0], author=annotator, payload={"vessel": "LCA"}, base_version=None)
    Item.objects.filter(pk=runs[1].pk).update(is_gold=True)
    wanting = items_wanting_labels(vessel_project)
    assert runs[0].pk not in wanting and runs[1].pk not in wanting and len(wanting) == 6
    assert not QueueEntry.objects.filter(item=runs[0]).exists()  # a finished item leaves the order at once


def test_strategies_a_task_cannot_feed_are_refused_with_the_reason(vessel_project, spect_project):
    with pytest.raises(SettingsError, match="margin needs 'margin' scores"):
        project_update(project=spect_project, settings={"acquisition_strategy": "margin"})
    with pytest.raises(SettingsError, match="bald needs Monte Carlo dropout"):
        project_update(project=vessel_project, settings={"acquisition_strategy": "bald"})
        vessel_project.refresh_from_db()
    with pytest.raises(SettingsError, match="unknown strategy 'coreset'"):
        project_update(project=vessel_project, settings={"acquisition_strategy": "coreset"})
        vessel_project.refresh_from_db()
    project_update(
        project=vessel_project,
        settings={"acquisition_strategy": "bald", "training_hparams": {"mc_dropout_passes": 4}},
    )


# ---------------------------------------------------------------------------------------------------- leases
def test_skip_release_and_expiry_give_the_slot_back(runs, vessel_project, annotator, lead):
    queue_set_order(project=vessel_project, item_ids=[r.pk for r in runs], strategy="manual")
    other = annotators(vessel_project, 1)[0]
    lease = item_next(project=vessel_project, annotator=annotator)
    item = Item.objects.get(pk=lease.item_id)
    assert item.open_slots == 0
    assert assignment_release(item=item, annotator=annotator) == 1
    assert Item.objects.get(pk=item.pk).open_slots == 1
    assert item_next(project=vessel_project, annotator=other).item_id == item.pk  # back at the head
    with pytest.raises(WorkspaceInputError, match="reason"):
        item_skip(item=item, annotator=other, reason=" ")
    item_skip(item=item, annotator=other, reason="too dark")
    assert Item.objects.get(pk=item.pk).open_slots == 1
    assert item_next(project=vessel_project, annotator=other).item_id != item.pk  # never offered to them again
    assert item_next(project=vessel_project, annotator=annotator).item_id == item.pk
    Assignment.objects.filter(annotator=annotator, state=AssignmentState.LEASED).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert leases_expire() == 1 and leases_expire() == 0  # a slot is returned once
    assert Item.objects.get(pk=item.pk).open_slots == 1


def test_a_late_submit_after_expiry_keeps_the_label_and_loses_no_slot(runs, vessel_project, annotator):
    queue_set_order(project=vessel_project, item_ids=[r.pk for r in runs], strategy="manual")
    other = annotators(vessel_project, 1)[0]
    lease = item_next(project=vessel_project, annotator=annotator)
    Assignment.objects.filter(pk=lease.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert item_next(project=vessel_project, annotator=other).item_id == lease.item_id  # expired, re-leased
    label_submit(item=lease.item, author=annotator, payload={"vessel": "RCA"}, base_version=None)
    label_submit(item=lease.item, author=other, payload={"vessel": "RCA"}, base_version=None)
    assert Label.objects.filter(item=lease.item).count() == 2
    assert Item.objects.get(pk=lease.item_id).open_slots == 0
    assert queue_open_count(vessel_project) == 7


# ---------------------------------------------------------------------------------------------------- overlap
def test_the_overlap_share_follows_the_rate_and_goes_to_two_different_annotators(vessel_project, client_for):
    project_update(project=vessel_project, settings={"overlap_rate": 0.4})
    vessel_project.refresh_from_db()
    run(vessel_project, *[(f"run{i}.dcm", samples.xa_bytes(seed=i, frames=2, size=16)) for i in range(40)])
    items = list(vessel_project.items.all())
    double = [item for item in items if item.required_labels == 2]
    assert {item.pk for item in double} == {i.pk for i in items if wants_overlap(vessel_project.pk, i.pk, 0.4)}
    assert 8 <= len(double) <= 24  # 40 draws at 0.4
    assert all(item.open_slots == item.required_labels for item in items)
    first, second, third = annotators(vessel_project, 3)
    seen: dict[int, list] = {}
    for user in (first, second, third):
        for item_id in lease_all(vessel_project, user):
            seen.setdefault(item_id, []).append(user.pk)
    assert all(len(set(users)) == len(users) for users in seen.values())  # never twice to one annotator
    assert {pk for pk, users in seen.items() if len(users) == 2} == {item.pk for item in double}
    assert all(len(seen[item.pk]) == 1 for item in items if item.required_labels == 1)
    # Blind: the second annotator's workspace shows no one else's label.
    item = double[0]
    later = next(u for u in (first, second, third) if u.pk == seen[item.pk][1])
    body = client_for(later).get(reverse("api:item-workspace", args=[item.pk])).json()
    assert body["label"] is not None and body["label"]["author"] == later.username


def test_changing_the_overlap_rate_redraws_only_unlabelled_items(runs, vessel_project, annotator):
    label_submit(item=runs[0], author=annotator, payload={"vessel": "LCA"}, base_version=None)
    project_update(project=vessel_project, settings={"overlap_rate": 1.0})
    vessel_project.refresh_from_db()
    items = {item.pk: item for item in vessel_project.items.all()}
    assert items[runs[0].pk].required_labels == 1  # labelled already: left alone
    assert all(items[r.pk].required_labels == 2 and items[r.pk].open_slots == 2 for r in runs[1:])
    project_update(project=vessel_project, settings={"overlap_rate": 0.0})
    vessel_project.refresh_from_db()
    assert set(vessel_project.items.values_list("required_labels", "open_slots")) <= {(1, 1), (1, 0)}


# ---------------------------------------------------------------------------------------------------- gold
def test_gold_items_are_mixed_in_at_the_gold_rate(runs, vessel_project, lead, annotator, client_for):
    gold = runs[:2]
    for item in gold:
        label_submit(item=item, author=lead, payload={"vessel": "RCA"}, base_version=None)
        response = client_for(lead).post(reverse("api:item-gold", args=[item.pk]), {"is_gold": True}, format="json")
        assert response.status_code == 200 and response.json()["is_gold"] is True
    refused = client_for(annotator).post(reverse("api:item-gold", args=[runs[4].pk]), {"is_gold": True})
    assert refused.status_code == 403
    project_update(project=vessel_project, settings={"gold_rate": 0.25})
    vessel_project.refresh_from_db()
    handed = lease_all(vessel_project, annotator)
    mine = Assignment.objects.filter(annotator=annotator).order_by("pk")
    hand_outs = [(item_id, kind == "gold") for item_id, kind in mine.values_list("item_id", "kind")]
    assert [item_id for item_id, _ in hand_outs] == handed
    golds = [i for i, (_, is_gold) in enumerate(hand_outs) if is_gold]
    # Every 4th hand-out is gold: 6 regular runs and both gold ones, each once; then the queue is empty.
    assert golds == [3, 7] and {hand_outs[i][0] for i in golds} == {item.pk for item in gold}
    assert len(handed) == len(set(handed)) == 8


def test_a_gold_item_needs_a_leads_label(runs, lead, annotator):
    label_submit(item=runs[0], author=annotator, payload={"vessel": "LCA"}, base_version=None)
    with pytest.raises(WorkspaceInputError, match="lead's label"):
        item_gold_set(item=runs[0], by=lead, gold=True)


def test_the_queue_endpoint_shows_leads_what_ranked_it(runs, vessel_project, lead, annotator, client_for):
    queue_rerank(project=vessel_project)
    body = client_for(lead).get(reverse("api:project-queue", args=[vessel_project.slug])).json()
    assert body["open"] == 8 and body["strategy"] == "cold_start" and body["ranked_items"] == 8
    assert body["model_version"] is None and body["generation"] >= 1
    mine = client_for(annotator).get(reverse("api:project-queue", args=[vessel_project.slug])).json()
    assert mine == {"open": 8}
