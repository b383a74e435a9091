"""What the list endpoints count and how they page: labelled counts per project and per split, stable pages."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.models import Item, Label, ModelVersion, Prediction, Role
from annotation.services import label_submit, project_update
from tests import dicom_samples as samples
from tests.annotation.test_ingest import run
from tests.factories import MembershipFactory, ProjectFactory

pytestmark = pytest.mark.django_db


def import_runs(project, count: int, first_seed: int = 0) -> list[Item]:
    """Import `count` small cine runs, each of its own patient, and return the project's items."""
    run(
        project,
        *[
            (f"run{i}.dcm", samples.xa_bytes(seed=i, frames=2, size=16, patient_id=f"MRN{i:04d}"))
            for i in range(first_seed, first_seed + count)
        ],
    )
    return list(project.items.order_by("pk"))


@pytest.fixture
def items(vessel_project):
    project_update(project=vessel_project, settings={"overlap_rate": 0.0})
    return import_runs(vessel_project, 5)


@pytest.fixture
def labelled(items, annotator, second_annotator):
    """Two of five items carry current labels: the first by both annotators (the annotator's in two
    versions, the first superseded), the second by the second annotator only."""
    first = label_submit(item=items[0], author=annotator, payload={"vessel": "LCA"}, base_version=None)
    label_submit(item=items[0], author=annotator, payload={"vessel": "RCA"}, base_version=first.version)
    label_submit(item=items[0], author=second_annotator, payload={"vessel": "RCA"}, base_version=None)
    label_submit(item=items[1], author=second_annotator, payload={"vessel": "LCA"}, base_version=None)
    assert Label.objects.filter(item=items[0], superseded_at__isnull=False).count() == 1
    return items[:2]


def counts(body: dict) -> tuple[int, int, int]:
    return body["item_count"], body["labelled_count"], body["my_labelled_count"]


def test_project_counts_are_labelled_items_not_all_items(
    labelled, vessel_project, client_for, lead, annotator, second_annotator
):
    detail = reverse("api:project-detail", args=[vessel_project.slug])
    assert counts(client_for(annotator).get(detail).json()) == (5, 2, 1)
    assert counts(client_for(second_annotator).get(detail).json()) == (5, 2, 2)
    assert counts(client_for(lead).get(detail).json()) == (5, 2, 0)


def test_project_list_counts_each_project_on_its_own(labelled, vessel_project, client_for, annotator):
    other = ProjectFactory(slug="other-vessel", name="Other vessel")
    MembershipFactory(project=other, user=annotator, role=Role.ANNOTATOR)
    (extra, *_) = import_runs(other, 3, first_seed=10)
    label_submit(item=extra, author=annotator, payload={"vessel": "LCA"}, base_version=None)
    body = client_for(annotator).get(reverse("api:project-list")).json()
    assert {row["slug"]: counts(row) for row in body["results"]} == {
        vessel_project.slug: (5, 2, 1),
        other.slug: (3, 1, 1),
    }


def test_a_project_without_labels_counts_zero(items, vessel_project, client_for, annotator):
    body = client_for(annotator).get(reverse("api:project-detail", args=[vessel_project.slug])).json()
    assert counts(body) == (5, 0, 0)


def test_splits_count_the_labelled_items_of_each_split(labelled, vessel_project, client_for, lead):
    body = client_for(lead).get(reverse("api:project-splits", args=[vessel_project.slug])).json()
    rows = Item.objects.filter(project=vessel_project)
    labelled_ids = {item.pk for item in labelled}
    expected = {
        name: {
            "items": rows.filter(split=name).count(),
            "labelled": rows.filter(split=name, pk__in=labelled_ids).count(),
        }
        for name in ("train", "validation", "test")
    }
    assert {name: {k: body["splits"][name][k] for k in ("items", "labelled")} for name in expected} == expected
    assert sum(split["labelled"] for split in body["splits"].values()) == 2
    assert sum(split["items"] for split in body["splits"].values()) == 5


def test_prediction_pages_hold_every_prediction_once_in_model_then_item_order(items, vessel_project, client_for, lead):
    versions = [ModelVersion.objects.create(project=vessel_project, number=n, family="metadata_mlp") for n in (1, 2)]
    # Stored out of order, as scoring jobs of two versions interleave.
    for version, item in [(v, i) for i in reversed(items) for v in reversed(versions)]:
        Prediction.objects.create(item=item, model_version=version, output={"LCA": 0.4, "RCA": 0.6}, uncertainty=0.5)
    client = client_for(lead)
    url = reverse("api:prediction-list") + "?limit=3"
    seen = []
    while url:
        page = client.get(url).json()
        seen += [(row["model_version"], row["item"]) for row in page["results"]]
        # A scoring job rewrites a score while the lead pages (on PostgreSQL the row moves in the heap).
        Prediction.objects.filter(pk=Prediction.objects.order_by("pk").first().pk).update(uncertainty=0.9)
        url = page["next"]
    assert page["count"] == 10
    assert seen == [(version.number, item.pk) for version in versions for item in items]


def test_predictions_filter_by_model_version_and_item_and_refuse_bad_ids(items, vessel_project, client_for, lead):
    versions = [ModelVersion.objects.create(project=vessel_project, number=n, family="metadata_mlp") for n in (1, 2)]
    for version in versions:
        for item in items:
            Prediction.objects.create(item=item, model_version=version, output={}, uncertainty=0.5)
    client = client_for(lead)
    url = reverse("api:prediction-list")
    mine = client.get(f"{url}?model_version={versions[1].pk}&limit=100").json()
    assert mine["count"] == len(items) and {row["model_version"] for row in mine["results"]} == {2}
    one = client.get(f"{url}?model_version={versions[0].pk}&item={items[0].pk}").json()
    assert [(row["model_version"], row["item"]) for row in one["results"]] == [(1, items[0].pk)]
    for bad in ("abc", "0.5", "-1", "%00"):
        response = client.get(f"{url}?model_version={bad}")
        assert response.status_code == 400 and "model_version" in response.json(), bad
    assert client.get(f"{url}?item=1e3").status_code == 400


def test_model_versions_page_newest_first(vessel_project, client_for, lead):
    for number in (2, 3, 1):
        ModelVersion.objects.create(project=vessel_project, number=number, family="metadata_mlp")
    client = client_for(lead)
    url = reverse("api:model-version-list") + f"?project={vessel_project.slug}&limit=2"
    numbers = []
    while url:
        page = client.get(url).json()
        numbers += [row["number"] for row in page["results"]]
        url = page["next"]
    assert numbers == [3, 2, 1]


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("api:item-list", "pullback=abc"),
        ("api:item-list", "pullback=99999999999999999999999"),
        ("api:item-list", "kind=movie"),
        ("api:item-list", "project=a%00b"),
        ("api:label-list", "item=0.5"),
        ("api:label-list", "item=-1"),
        ("api:prediction-list", "model_version=%C2%B2"),
        ("api:model-version-list", "project=no%20slug"),
        ("api:job-list", "project=%00"),
        ("api:job-list", "limit=501"),
        ("api:job-list", "limit=0"),
        ("api:job-list", "limit=-5"),
        ("api:job-list", "offset=-1"),
        ("api:job-list", "offset=99999999999999999999999"),
        ("api:job-list", "offset=x"),
    ],
)
def test_a_bad_query_parameter_is_a_400_naming_it(items, client_for, lead, url, field):
    answer = client_for(lead).get(f"{reverse(url)}?{field}")
    assert answer.status_code == 400, answer.content
    assert list(answer.json()) == [field.split("=")[0]]


def test_project_members_are_a_page(vessel_project, client_for, lead):
    body = client_for(lead).get(reverse("api:member-list", args=[vessel_project.slug]) + "?limit=1").json()
    assert body["count"] == 2 and len(body["results"]) == 1 and body["next"]
