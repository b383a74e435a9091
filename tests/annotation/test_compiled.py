"""Compiled hot-path queries (annotation.compiled): the same rows as the queryset, built once, refused when unsafe."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.db.transaction import TransactionManagementError
from django.urls import reverse

from annotation import selectors
from annotation.compiled import CompiledQuery
from annotation.models import Draft, Item, Membership, Role
from annotation.services import label_submit, project_update
from annotation.services.queue import queue_set_order
from tests import dicom_samples as samples
from tests.annotation.test_ingest import run
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def runs(vessel_project):
    project_update(project=vessel_project, settings={"overlap_rate": 0.0})
    run(vessel_project, *[(f"run{i}.dcm", samples.xa_bytes(seed=i)) for i in range(3)])
    items = list(vessel_project.items.order_by("id"))
    queue_set_order(project=vessel_project, item_ids=[item.pk for item in items], strategy="manual")
    return items


def _fields(item: Item, names: tuple[str, ...]) -> dict:
    return {name: getattr(item, name) for name in names}


WORKSPACE_STATE = ("viewer_role", "has_label", "has_draft", "has_review", "lease_expires_at")


def test_the_compiled_workspace_item_equals_the_queryset_for_every_user_and_item(
    runs, vessel_project, annotator, lead, stranger
):
    label_submit(item=runs[0], author=annotator, payload={"vessel": "LCA"}, base_version=None)
    Draft.objects.create(item=runs[1], author=annotator, payload={"vessel": "RCA"})
    admin = UserFactory(username="admin", is_superuser=True)
    for user in (annotator, lead, stranger, admin):
        for item in runs:
            compiled = selectors.workspace_item(user, item.pk)
            plain = selectors.with_workspace_state(selectors.items_for(user), user).filter(pk=item.pk).first()
            if plain is None:
                assert compiled is None, (user.username, item.pk)
                continue
            assert compiled == plain
            assert _fields(compiled, WORKSPACE_STATE) == _fields(plain, WORKSPACE_STATE)
            # Related rows of select_related arrive with it, as the queryset's do.
            assert compiled.instance.sop_instance_uid == plain.instance.sop_instance_uid
            assert compiled.project.slug == vessel_project.slug
            assert compiled.patient.pseudonym == plain.patient.pseudonym
    assert selectors.workspace_item(annotator, runs[0].pk).has_label is True
    assert selectors.workspace_item(annotator, runs[1].pk).has_draft is True
    assert selectors.workspace_item(annotator, runs[2].pk).has_label is False
    assert selectors.workspace_item(stranger, runs[0].pk) is None
    assert selectors.workspace_item(admin, runs[0].pk).viewer_role == Role.LEAD  # the superuser's own shape


def test_a_compiled_query_is_built_once_per_shape(runs, annotator, lead):
    built = []

    def build(user, item_id):
        built.append(item_id)
        return selectors.items_to_label(user).filter(pk=item_id)

    query = CompiledQuery(build)
    for item in runs:
        assert query.first(user=annotator, item_id=item.pk) == item
    assert len(built) == 2  # compiled twice, with two sets of stand-ins, then reused
    admin = UserFactory(username="admin", is_superuser=True)
    assert query.first(user=admin, item_id=runs[0].pk) == runs[0]
    assert len(built) == 4  # a superuser's items are another query
    Membership.objects.filter(user=annotator).delete()
    assert query.first(user=annotator, item_id=runs[0].pk) is None  # the values are read at each call


@pytest.mark.django_db(transaction=True)  # outside a transaction, as a caller forgetting one would be
def test_values_list_rows_and_locks(runs, annotator):
    query = CompiledQuery(
        lambda item_id, author: Item.objects.select_for_update()
        .filter(pk=item_id)
        .annotate(drafted=Exists(Draft.objects.filter(item=OuterRef("pk"), author=author)))
        .values_list("pk", "drafted")
    )
    Draft.objects.create(item=runs[1], author=annotator, payload={"vessel": "RCA"})
    with transaction.atomic():
        assert query.rows(item_id=runs[0].pk, author=annotator) == [(runs[0].pk, False)]
        assert query.rows(item_id=runs[1].pk, author=annotator) == [(runs[1].pk, True)]
    with pytest.raises(TransactionManagementError):
        query.rows(item_id=runs[0].pk, author=annotator)


def test_a_query_whose_sql_depends_on_its_values_is_refused(runs):
    inlined = CompiledQuery(lambda item_id: Item.objects.extra(where=[f"annotation_item.id = {int(item_id)}"]))
    with pytest.raises(ValueError, match="depends on the values"):
        inlined.rows(item_id=runs[0].pk)


def test_arguments_the_sql_was_not_compiled_for_are_refused(runs, annotator):
    query = CompiledQuery(lambda item_id: Item.objects.filter(pk=item_id))
    with pytest.raises(TypeError, match="is None"):
        query.rows(item_id=None)
    with pytest.raises(TypeError, match="takes item_id"):
        query.rows(pk=runs[0].pk)
    assert query.rows(item_id=2**70) == []  # no row has that id
    with pytest.raises(TypeError, match="an id, a string or a model instance"):
        query.rows(item_id=1.0)


def test_the_submit_field_reads_item_ids_as_before(runs, vessel_project, client_for, annotator):
    client = client_for(annotator)
    labels = reverse("api:label-list")
    other = ProjectFactory()
    run(other, ("hidden.dcm", samples.xa_bytes(seed=9)))
    hidden = other.items.get()
    for item, status, message in (
        (str(runs[0].pk), 201, None),
        (True, 400, "Incorrect type"),
        (1.5, 400, "Incorrect type"),
        ("abc", 400, "Incorrect type"),
        (2**70, 400, "does not exist"),
        (hidden.pk, 400, "does not exist"),
        (-1, 400, "does not exist"),
    ):
        response = client.post(labels, {"item": item, "payload": {"vessel": "LCA"}}, format="json")
        assert response.status_code == status, (item, response.content)
        if message:
            assert message in str(response.json()["item"]), (item, response.json())


def test_item_urls_with_ids_beyond_64_bits_are_not_found(runs, client_for, annotator):
    client = client_for(annotator)
    huge = 2**70
    assert client.get(reverse("api:item-workspace", args=[huge])).status_code == 404
    assert client.get(reverse("api:item-frame", args=[huge, 0])).status_code == 404
    assert client.get(reverse("api:item-frame", args=[runs[0].pk, 0])).status_code == 200
    assert client.get(reverse("api:item-workspace", args=[runs[0].pk])).status_code == 200


def test_hot_serializers_build_their_fields_once_and_give_each_instance_its_own(runs, annotator, rf):
    from annotation.api.serializers import ItemSerializer

    request = rf.get("/")
    request.user = annotator
    first = ItemSerializer(runs[0], context={"request": request, "lead_projects": set()})
    second = ItemSerializer(runs[1], context={"request": request, "lead_projects": set()})
    assert first.data["id"] == runs[0].pk and second.data["id"] == runs[1].pk
    assert first.data["split"] is None  # the context of each instance is its own: an annotator sees no split
    assert first.fields["title"] is not second.fields["title"]  # bound to their own serializer
    assert first.fields["title"].parent is first and second.fields["title"].parent is second
    template = ItemSerializer._fields_built["title"]
    assert template is not first.fields["title"] and getattr(template, "parent", None) is None  # never bound
    lead_view = ItemSerializer(runs[0], context={"request": request, "lead_projects": {runs[0].project_id}})
    assert lead_view.data["split"] == runs[0].split
