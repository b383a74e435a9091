"""The role × endpoint matrix: who may call what, and that annotators never see identifiers."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.models import Job, JobKind, Label, ModelVersion, Prediction, Role, TaskType
from annotation.services import import_run, label_submit
from tests import dicom_samples as samples
from tests.annotation.test_ingest import source
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(vessel_project, lead, annotator, stranger):
    import_run(project=vessel_project, sources=[source("run.dcm", samples.xa_bytes())])
    item = vessel_project.items.get()
    other = UserFactory(username="annotator-two")
    MembershipFactory(project=vessel_project, user=other, role=Role.ANNOTATOR)
    label_submit(item=item, author=other, payload={"vessel": "RCA"}, base_version=None)
    version = ModelVersion.objects.create(project=vessel_project, number=1, family="metadata_mlp")
    prediction = Prediction.objects.create(
        item=item, model_version=version, output={"LCA": 0.3, "RCA": 0.7}, uncertainty=0.6
    )
    job = Job.objects.get(kind=JobKind.IMPORT)
    return {
        "project": vessel_project,
        "item": item,
        "version": version,
        "prediction": prediction,
        "job": job,
        "other_label": Label.objects.get(author=other),
    }


def urls(w):
    slug, item = w["project"].slug, w["item"].pk
    return {
        "project-list": reverse("api:project-list"),
        "project-detail": reverse("api:project-detail", args=[slug]),
        "patients": reverse("api:project-patients", args=[slug]),
        "members": reverse("api:member-list", args=[slug]),
        "imports": reverse("api:import-list", args=[slug]),
        "item-list": reverse("api:item-list") + f"?project={slug}",
        "item-detail": reverse("api:item-detail", args=[item]),
        "item-frame": reverse("api:item-frame", args=[item, 0]),
        "label-list": reverse("api:label-list"),
        "prediction-list": reverse("api:prediction-list"),
        "model-version-list": reverse("api:model-version-list"),
        "job-list": reverse("api:job-list"),
        "job-detail": reverse("api:job-detail", args=[w["job"].pk]),
        "schema": reverse("schema"),
        "docs": reverse("swagger-ui"),
        "me": reverse("api:me"),
    }


# Expected status per role for GET; 404 for strangers keeps other projects' existence private.
MATRIX = {
    #                     anonymous lead annotator stranger
    "project-list": (401, 200, 200, 200),
    "project-detail": (401, 200, 200, 404),
    "patients": (401, 200, 403, 404),
    "members": (401, 200, 403, 404),
    "imports": (401, 200, 403, 404),
    "item-list": (401, 200, 200, 200),
    "item-detail": (401, 200, 200, 404),
    "item-frame": (401, 200, 200, 404),
    "label-list": (401, 200, 200, 200),
    "prediction-list": (401, 200, 200, 200),
    "model-version-list": (401, 200, 200, 200),
    "job-list": (401, 200, 200, 200),
    "job-detail": (401, 200, 404, 404),
    "schema": (401, 200, 200, 200),
    "docs": (401, 200, 200, 200),
    "me": (401, 200, 200, 200),
}


@pytest.mark.parametrize("endpoint", sorted(MATRIX))
def test_get_matrix(world, endpoint, client_for, lead, annotator, stranger):
    url = urls(world)[endpoint]
    for user, expected in zip((None, lead, annotator, stranger), MATRIX[endpoint], strict=True):
        response = client_for(user).get(url)
        # Session-less anonymous API calls are told to authenticate (401 with the token scheme, 403 otherwise).
        allowed = {401, 403} if expected == 401 else {expected}
        who = user.username if user else "anonymous"
        assert response.status_code in allowed, f"{who} GET {endpoint}: {response.status_code}"


def test_lists_hold_only_what_each_role_may_see(world, client_for, lead, annotator, stranger):
    def ids(user, name):
        return [row["id"] for row in client_for(user).get(urls(world)[name]).json()["results"]]

    assert ids(stranger, "item-list") == []
    assert ids(lead, "label-list") == [world["other_label"].pk]
    assert ids(annotator, "label-list") == []  # another annotator's label stays hidden
    assert ids(lead, "prediction-list") == [world["prediction"].pk]
    assert ids(annotator, "prediction-list") == []  # hidden by default for vessel type (anchoring)
    assert ids(lead, "model-version-list") == [world["version"].pk]
    assert ids(annotator, "model-version-list") == []
    assert ids(annotator, "job-list") == []
    world["project"].settings = {**world["project"].settings, "show_predictions_to_annotators": True}
    world["project"].save()
    assert ids(annotator, "prediction-list") == [world["prediction"].pk]


def test_annotator_sees_no_identifiers_but_the_lead_sees_the_pseudonym_map(world, client_for, lead, annotator):
    item_json = client_for(annotator).get(urls(world)["item-detail"]).content.decode()
    for secret in ("DOE^JANE", "MRN0001", "19580312", "run.dcm"):
        assert secret not in item_json
    assert client_for(annotator).get(urls(world)["item-detail"]).json()["patient"].startswith("P-")
    rows = client_for(lead).get(urls(world)["patients"]).json()["results"]
    assert [(r["original_patient_id"], r["original_name"]) for r in rows] == [("MRN0001", "DOE^JANE")]


def test_writes_need_the_lead_role(world, client_for, lead, annotator, stranger):
    project = urls(world)["project-detail"]
    assert client_for(annotator).patch(project, {"name": "x"}, format="json").status_code == 403
    assert client_for(stranger).patch(project, {"name": "x"}, format="json").status_code == 404
    assert client_for(lead).patch(project, {"name": "Renamed"}, format="json").status_code == 200
    members = urls(world)["members"]
    assert client_for(annotator).post(members, {"username": "stranger-user", "role": "annotator"}).status_code == 403
    assert client_for(lead).post(members, {"username": "stranger-user", "role": "annotator"}).status_code == 201
    assert client_for(stranger).get(urls(world)["item-detail"]).status_code == 200  # now a member
    upload = client_for(annotator).post(urls(world)["imports"], {"files": []}, format="multipart")
    assert upload.status_code == 403


def test_project_creation_needs_the_permission_and_makes_the_creator_lead(client_for, lead, annotator):
    from django.contrib.auth.models import Permission

    body = {"slug": "new-one", "name": "New", "task_type": TaskType.OCT_CALCIUM}
    assert client_for(annotator).post(reverse("api:project-list"), body, format="json").status_code == 403
    lead.user_permissions.add(Permission.objects.get(codename="add_project"))
    response = client_for(lead).post(reverse("api:project-list"), body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["my_role"] == "lead"
    assert response.json()["settings"]["show_predictions_to_annotators"] is True  # OCT default
    again = client_for(lead).post(reverse("api:project-list"), body, format="json")
    assert again.status_code == 400 and "already exists" in again.json()["slug"][0]


def test_bad_settings_are_a_400_naming_the_field(world, client_for, lead):
    response = client_for(lead).patch(urls(world)["project-detail"], {"settings": {"overlap_rate": 2}}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "settings.overlap_rate"


def test_last_lead_cannot_be_removed_or_demoted(world, client_for, lead):
    url = reverse("api:member-detail", args=[world["project"].slug, lead.username])
    response = client_for(lead).delete(url)
    assert response.status_code == 409 and "at least one lead" in response.json()["detail"]
    members = urls(world)["members"]
    demote = client_for(lead).post(members, {"username": lead.username, "role": "annotator"})
    assert demote.status_code == 409
    assert client_for(lead).post(members, {"username": "annotator-user", "role": "lead"}).status_code == 201
    assert client_for(lead).post(members, {"username": lead.username, "role": "annotator"}).status_code == 201


def test_token_auth_works_for_the_api(world, client, lead):
    token = client.post(reverse("api:token"), {"username": lead.username, "password": "pw-for-tests"}).json()["token"]
    response = client.get(reverse("api:project-list"), HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200 and response.json()["count"] == 1


def test_other_projects_stay_invisible(world, client_for, annotator):
    hidden = ProjectFactory(slug="secret-project")
    response = client_for(annotator).get(reverse("api:project-detail", args=[hidden.slug]))
    assert response.status_code == 404
