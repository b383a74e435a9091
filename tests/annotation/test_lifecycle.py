"""The model lifecycle: explicit states, the only transitions allowed, and the decision kept in columns."""

from __future__ import annotations

import itertools

import pytest

from annotation.models import ModelStatus, ModelVersion
from annotation.services.lifecycle import TRANSITIONS, IllegalTransition, model_version_move

pytestmark = pytest.mark.django_db


def version(project, number: int, status: str) -> ModelVersion:
    return ModelVersion.objects.create(project=project, number=number, family="metadata_mlp", status=status)


def test_every_state_has_its_transitions_and_the_final_states_lead_nowhere():
    assert set(TRANSITIONS) == set(ModelStatus.values)
    assert TRANSITIONS[ModelStatus.REJECTED] == TRANSITIONS[ModelStatus.RETIRED] == frozenset()


@pytest.mark.parametrize(
    ("start", "to"),
    [(a, b) for a, b in itertools.product(ModelStatus.values, repeat=2) if b not in TRANSITIONS[a]],
)
def test_an_illegal_transition_raises_and_changes_nothing(vessel_project, start, to):
    v = version(vessel_project, 1, start)
    with pytest.raises(IllegalTransition, match=f"is {start}: it cannot become {to}"):
        model_version_move(version=v, to=to, rule="x")
    v.refresh_from_db()
    assert (v.status, v.decision_rule, v.decided_at) == (start, "", None)


def test_a_winner_is_judged_then_crowned_then_retired_keeping_its_rule(vessel_project):
    champion = version(vessel_project, 1, ModelStatus.CHAMPION)
    v = version(vessel_project, 2, ModelStatus.TRAINED)
    model_version_move(version=v, to=ModelStatus.CANDIDATE, rule="beats v1 beyond noise", compared_with=champion)
    model_version_move(version=champion, to=ModelStatus.RETIRED, rule="retired: v2 promoted")
    model_version_move(version=v, to=ModelStatus.CHAMPION, rule="beats v1 beyond noise")
    v.refresh_from_db()
    champion.refresh_from_db()
    assert (v.status, v.compared_with, v.decision_rule) == (ModelStatus.CHAMPION, champion, "beats v1 beyond noise")
    assert v.promoted_at is not None and v.decided_at is not None
    assert champion.status == ModelStatus.RETIRED and champion.decided_at is not None
    model_version_move(version=v, to=ModelStatus.RETIRED, rule="retired: v3 promoted")
    v.refresh_from_db()
    assert v.decision_rule == "beats v1 beyond noise"  # a retirement keeps the rule that crowned it


def test_a_decider_working_from_a_stale_state_loses(vessel_project):
    v = version(vessel_project, 1, ModelStatus.CANDIDATE)
    stale = ModelVersion.objects.get(pk=v.pk)
    model_version_move(version=v, to=ModelStatus.REJECTED, rule="champion changed")
    with pytest.raises(IllegalTransition, match="is rejected"):
        model_version_move(version=stale, to=ModelStatus.CHAMPION, rule="crowned")
    assert ModelVersion.objects.get(pk=v.pk).status == ModelStatus.REJECTED


def test_the_model_page_shows_the_states_and_the_decision(vessel_project, lead, client, client_for):
    champion = version(vessel_project, 1, ModelStatus.CHAMPION)
    v = version(vessel_project, 2, ModelStatus.TRAINED)
    model_version_move(
        version=v, to=ModelStatus.REJECTED, rule="kept the champion: within noise", compared_with=champion
    )
    client.force_login(lead)
    page = client.get(f"/projects/{vessel_project.slug}/").content.decode()
    for state in ModelStatus:
        assert f'<dt data-state="{state.value}">' in page and str(state.label) in page
    row = next(
        r
        for r in client_for(lead).get(f"/api/model-versions/?project={vessel_project.slug}").json()["results"]
        if r["number"] == 2
    )
    assert (row["status"], row["decision_rule"], row["compared_with"]) == (
        "rejected",
        "kept the champion: within noise",
        1,
    )
