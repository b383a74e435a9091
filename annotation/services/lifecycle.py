"""The model version lifecycle: the states a version passes through and the only transitions between them.

    trained ──judged a winner──▶ candidate ──scored, champion unchanged──▶ champion ──a successor promoted──▶ retired
       │                             │
       └──judged a loser──▶ rejected ◀──the champion changed while it scored

A version is registered `trained` once its weights and exact training set are stored. The judge compares it with
the champion on the locked test items (`candidate_judge`); a winner waits as `candidate` until it has scored every
unlabelled item, and the end of that scoring crowns it (`scoring_finish`) unless another version was crowned in the
meantime. `model_version_move` is the one place a status changes: anything else raises `IllegalTransition`.
"""

from __future__ import annotations

from django.utils import timezone

from annotation.models import ModelStatus, ModelVersion
from annotation.services.events import leads_event_send

TRANSITIONS: dict[str, frozenset[str]] = {
    ModelStatus.TRAINED: frozenset({ModelStatus.CANDIDATE, ModelStatus.REJECTED}),
    ModelStatus.CANDIDATE: frozenset({ModelStatus.CHAMPION, ModelStatus.REJECTED}),
    ModelStatus.CHAMPION: frozenset({ModelStatus.RETIRED}),
    ModelStatus.REJECTED: frozenset(),
    ModelStatus.RETIRED: frozenset(),
}


class IllegalTransition(Exception):
    """A model version was asked to move to a state its current state does not lead to."""

    def __init__(self, version: ModelVersion, current: str, wanted: str) -> None:
        allowed = ", ".join(sorted(TRANSITIONS.get(current, ()))) or "nothing (final)"
        super().__init__(f"model v{version.number} is {current}: it cannot become {wanted} (allowed: {allowed})")
        self.current, self.wanted = current, wanted


def model_version_move(
    *, version: ModelVersion, to: str, rule: str, compared_with: ModelVersion | None = None
) -> ModelVersion:
    """Move the version to state `to`, recording the rule that decided it; raise IllegalTransition otherwise.

    The update is conditional on the state the caller read, so two deciders racing on one version cannot both
    win: the loser's move raises. Promotion and retirement run under the project row lock (`scoring_finish`).
    """
    current = version.status
    if to not in TRANSITIONS.get(current, ()):
        raise IllegalTransition(version, current, to)
    now = timezone.now()
    fields: dict = {"status": to, "decided_at": now}
    if to != ModelStatus.RETIRED:  # a retirement keeps the rule that crowned it
        fields["decision_rule"] = rule
    if current == ModelStatus.TRAINED:
        fields["compared_with"] = compared_with
    if to == ModelStatus.CHAMPION:
        fields["promoted_at"] = now
    if not ModelVersion.objects.filter(pk=version.pk, status=current).update(**fields):
        version.refresh_from_db(fields=["status"])
        raise IllegalTransition(version, version.status, to)
    for name, value in fields.items():
        setattr(version, name, value)
    leads_event_send(
        version.project_id, {"event": "model", "model_version": version.number, "status": to, "rule": rule}
    )
    return version
