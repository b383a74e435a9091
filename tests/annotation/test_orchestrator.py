"""The active-learning loop: retraining policies, champion/challenger through scoring, crash safety, live events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from annotation.consumers import ProjectEventsConsumer
from annotation.models import Job, JobKind, JobStatus, ModelStatus, ModelVersion, Prediction, ProjectQueue, QueueEntry
from annotation.project_settings import parse_settings
from annotation.services import label_submit, project_update
from annotation.services.jobs import JobConflict, job_claim, job_report, jobs_recover_stale
from annotation.services.learning import scoring_request, training_request
from annotation.services.orchestrator import job_run, orchestrator_tick, retrain_reason
from annotation.services.queue import queue_rerank
from gpu_workers.executors import Executor, Handle, InlineExecutor, PollResult
from tests.cohort_projects import label_vessel, vessel_cohort
from tests.jobs import run_next_job

FAST = {"epochs": 2, "batch_size": 8, "patience": 0}


def queue_state(project) -> tuple:
    """Return what annotators are served: the queue's generation, ranking model and entries."""
    queue = ProjectQueue.objects.get(project=project)
    entries = list(
        QueueEntry.objects.filter(project=project)
        .order_by("-priority", "item_id")
        .values_list("generation", "item_id", "priority")
    )
    return queue.generation, queue.model_version_id, queue.strategy, entries


@pytest.fixture
def labelled(vessel_project, annotator, tmp_path):
    """A vessel project: 10 patients x 2 runs, all but 6 runs labelled from the truth, with a first champion."""
    project_update(project=vessel_project, settings={"overlap_rate": 0.0, "retrain_every_n_labels": 0})
    vessel_project.refresh_from_db()
    cohort = vessel_cohort(vessel_project, tmp_path / "xa", patients=10, runs=2)
    items = sorted(cohort, key=lambda item: item.pk)
    for item in items[6:]:
        label_vessel(item, annotator, cohort[item].vessel)
    return cohort, items[:6]


def first_champion(project, lead, executor) -> ModelVersion:
    training_request(project=project, by=lead, family="metadata_mlp", hparams=FAST)
    assert run_next_job(executor).status == JobStatus.SUCCEEDED
    assert run_next_job(executor).status == JobStatus.SUCCEEDED  # scoring, then promotion and re-rank
    return ModelVersion.objects.get(project=project, status=ModelStatus.CHAMPION)


# ---------------------------------------------------------------------------------------------------- policies
@pytest.mark.django_db
def test_retraining_fires_after_n_new_labels_and_only_once(vessel_project, annotator, tmp_path):
    project_update(project=vessel_project, settings={"overlap_rate": 0.0, "retrain_every_n_labels": 5})
    cohort = vessel_cohort(vessel_project, tmp_path / "xa", patients=6, runs=2)
    items = sorted(cohort, key=lambda item: item.pk)
    for item in items[:4]:
        label_vessel(item, annotator, cohort[item].vessel)
    assert orchestrator_tick().trainings == {}
    label_vessel(items[4], annotator, cohort[items[4]].vessel)
    report = orchestrator_tick()
    assert list(report.trainings) == [vessel_project.slug]
    assert "5 new labels" in report.trainings[vessel_project.slug]
    job = Job.objects.get(project=vessel_project, kind=JobKind.TRAIN)
    assert job.status == JobStatus.QUEUED and job.params["reason"].startswith("5 new labels")
    assert orchestrator_tick().trainings == {}  # counted from the queued training: nothing new since
    for item in items[5:10]:
        label_vessel(item, annotator, cohort[item].vessel)
    assert orchestrator_tick().trainings == {}  # five more, but a round is already under way
    assert Job.objects.filter(project=vessel_project, kind=JobKind.TRAIN).count() == 1


@pytest.mark.django_db
def test_a_schedule_retrains_when_time_has_passed_and_labels_came_in(vessel_project, annotator, tmp_path):
    project_update(
        project=vessel_project,
        settings={"overlap_rate": 0.0, "retrain_every_n_labels": 0, "retrain_every_minutes": 30},
    )
    vessel_project.refresh_from_db()
    settings = parse_settings(vessel_project.task_type, vessel_project.settings)
    cohort = vessel_cohort(vessel_project, tmp_path / "xa", patients=2, runs=2)
    now = timezone.now()
    assert retrain_reason(vessel_project, settings, now) is None  # no labels yet
    item = next(iter(cohort))
    label_vessel(item, annotator, cohort[item].vessel)
    assert retrain_reason(vessel_project, settings, now).startswith("scheduled")  # never trained: due now
    Job.objects.create(project=vessel_project, kind=JobKind.TRAIN, status=JobStatus.SUCCEEDED)
    other = [i for i in cohort if i != item][0]
    label_vessel(other, annotator, cohort[other].vessel)
    assert retrain_reason(vessel_project, settings, timezone.now()) is None
    assert retrain_reason(vessel_project, settings, timezone.now() + timedelta(minutes=31)).startswith("scheduled")


@pytest.mark.django_db
@pytest.mark.usefixtures("judge_promotes")
def test_one_training_round_per_project(labelled, vessel_project, lead, executor):
    training_request(project=vessel_project, by=lead, family="metadata_mlp", hparams=FAST)
    with pytest.raises(JobConflict, match="train job"):
        training_request(project=vessel_project, by=lead)
    assert run_next_job(executor).status == JobStatus.SUCCEEDED  # the candidate now waits for its scoring
    with pytest.raises(JobConflict, match="score job"):
        training_request(project=vessel_project, by=lead)


@pytest.mark.django_db
@pytest.mark.usefixtures("judge_promotes")
def test_the_tick_cold_starts_a_new_project_and_has_the_champion_score_new_imports(
    labelled, vessel_project, lead, executor, tmp_path
):
    report = orchestrator_tick()
    assert report.cold_starts == [vessel_project.slug]
    assert ProjectQueue.objects.get(project=vessel_project).strategy == "cold_start"
    champion = first_champion(vessel_project, lead, executor)
    assert orchestrator_tick().scorings == []  # the champion's ranking is current
    vessel_cohort(vessel_project, tmp_path / "more", patients=2, runs=1, seed=99)
    assert orchestrator_tick().scorings == [vessel_project.slug]
    score = run_next_job(executor)
    assert score.status == JobStatus.SUCCEEDED and score.result["promoted"] is False and score.result["reranked"]
    queue = ProjectQueue.objects.get(project=vessel_project)
    assert queue.unranked_items == 0 and queue.model_version == champion
    assert Prediction.objects.filter(model_version=champion).count() == 8


@pytest.mark.django_db
def test_before_a_first_champion_the_newest_model_ranks_the_queue_and_scores_new_imports(
    labelled, vessel_project, lead, executor, tmp_path, monkeypatch
):
    from annotation.services import learning

    monkeypatch.setattr(learning, "promotion_decision", lambda *args, **kwargs: (False, "not promoted: this test"))
    orchestrator_tick()  # the cold start
    training_request(project=vessel_project, by=lead, family="metadata_mlp", hparams=FAST)
    assert not run_next_job(executor).result["wins"]
    score = run_next_job(executor)
    version = ModelVersion.objects.get(project=vessel_project)
    assert score.model_version == version and score.result["reranked"] and score.result["provisional"]
    report = orchestrator_tick()
    assert report.scorings == [] and report.cold_starts == []  # its ranking is current
    vessel_cohort(vessel_project, tmp_path / "more", patients=2, runs=1, seed=99)
    report = orchestrator_tick()
    assert report.scorings == [vessel_project.slug] and report.cold_starts == []
    score = run_next_job(executor)
    assert score.model_version == version and score.result["reranked"] and not score.result["promoted"]
    queue = ProjectQueue.objects.get(project=vessel_project)
    assert queue.unranked_items == 0 and queue.model_version == version and queue.strategy == "entropy"
    assert Prediction.objects.filter(model_version=version).count() == 8
    # The lead picks another strategy: the same model's stored scores re-rank the queue, no model run.
    project_update(project=vessel_project, settings={"acquisition_strategy": "least_confidence"})
    report = orchestrator_tick()
    assert report.reranks == [vessel_project.slug] and report.scorings == [] and report.cold_starts == []
    queue = ProjectQueue.objects.get(project=vessel_project)
    assert queue.model_version == version and queue.strategy == "least_confidence"
    version.refresh_from_db()
    assert version.status == ModelStatus.REJECTED


# ---------------------------------------------------------------------------------------------------- crash safety
class DyingExecutor(InlineExecutor):
    """Dies like a killed process (an exception no handler catches) on the `die_on`-th request."""

    class Killed(BaseException):
        pass

    def __init__(self, die_on: int) -> None:
        super().__init__()
        self.die_on = die_on
        self.requests: list = []

    def submit(self, request, key):
        self.requests.append(request)
        if len(self.requests) == self.die_on:
            raise self.Killed()
        return super().submit(request, key)


class FailingExecutor(Executor):
    """Fails every job the way a crashed Ray worker does, after reporting one epoch."""

    name = "failing"

    def submit(self, request, key):
        return Handle(key=key, kind="train", reference=None)

    def poll(self, handle, timeout=1.0):
        progress = [{"phase": "training", "epoch": 1, "loss": 0.9, "done": 1, "total": 2}]
        return PollResult(done=True, progress=progress, error="WorkerCrashedError: the worker died unexpectedly")

    def cancel(self, handle):
        return None


@pytest.mark.django_db
@pytest.mark.usefixtures("judge_promotes")
def test_a_failed_training_leaves_the_champion_and_the_queue_untouched(labelled, vessel_project, lead, executor):
    champion = first_champion(vessel_project, lead, executor)
    before = queue_state(vessel_project)
    training_request(project=vessel_project, by=lead, family="metadata_mlp", hparams=FAST)
    job = job_claim()
    job_run(job=job, executor=FailingExecutor(), poll_seconds=0.05)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "worker died" in job.error
    assert list(ModelVersion.objects.filter(project=vessel_project)) == [champion]
    champion.refresh_from_db()
    assert champion.status == ModelStatus.CHAMPION
    assert queue_state(vessel_project) == before


@pytest.mark.django_db
@pytest.mark.usefixtures("judge_promotes")
def test_a_scoring_killed_midway_keeps_champion_and_queue_then_resumes_and_promotes(
    labelled, vessel_project, lead, executor, settings
):
    settings.LUMEN_SCORE_CHUNK = 2
    champion = first_champion(vessel_project, lead, executor)
    before = queue_state(vessel_project)
    training_request(project=vessel_project, by=lead, family="metadata_mlp", hparams={**FAST, "epochs": 4})
    run_next_job(executor)
    candidate = ModelVersion.objects.get(project=vessel_project, number=2)
    if candidate.status == ModelStatus.REJECTED:  # make the round a winner whatever the tiny model learnt
        ModelVersion.objects.filter(pk=candidate.pk).update(
            status=ModelStatus.CANDIDATE, decision_rule="test", compared_with=champion
        )
        scoring_request(version=candidate)
    job = job_claim()
    assert job.kind == JobKind.SCORE and job.model_version_id == candidate.pk
    dying = DyingExecutor(die_on=2)
    with pytest.raises(DyingExecutor.Killed):
        job_run(job=job, executor=dying, poll_seconds=0.05)
    dying.close()
    # Killed after one batch: the job still looks running, the candidate kept its first scores, nothing else moved.
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING
    assert Prediction.objects.filter(model_version=candidate).count() == 2
    candidate.refresh_from_db()
    champion.refresh_from_db()
    assert (candidate.status, champion.status) == (ModelStatus.CANDIDATE, ModelStatus.CHAMPION)
    assert queue_state(vessel_project) == before
    # The next orchestrator finds the job silent, runs it again, and it scores only what is left.
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=10))
    assert jobs_recover_stale(stale_after=timedelta(minutes=5), max_attempts=3) == 1
    counting = DyingExecutor(die_on=0)
    job = job_claim()
    job_run(job=job, executor=counting, poll_seconds=0.05)
    counting.close()
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2, job.error
    assert sum(len(r.refs) for r in counting.requests) == 4  # 6 wanted, 2 already scored
    candidate.refresh_from_db()
    champion.refresh_from_db()
    assert (candidate.status, champion.status) == (ModelStatus.CHAMPION, ModelStatus.RETIRED)
    generation, ranked_by, strategy, entries = queue_state(vessel_project)
    assert generation == before[0] + 1 and ranked_by == candidate.pk and len(entries) == 6


@pytest.mark.django_db
@pytest.mark.usefixtures("judge_promotes")
def test_a_candidate_beaten_to_the_throne_is_not_promoted(labelled, vessel_project, lead, executor):
    first = first_champion(vessel_project, lead, executor)
    training_request(project=vessel_project, by=lead, family="metadata_mlp", hparams=FAST)
    run_next_job(executor)
    candidate = ModelVersion.objects.get(project=vessel_project, number=2)
    ModelVersion.objects.filter(pk=candidate.pk).update(
        status=ModelStatus.CANDIDATE, decision_rule="test", compared_with=first
    )
    Job.objects.filter(kind=JobKind.SCORE, status=JobStatus.QUEUED).delete()
    # Meanwhile another version took over.
    ModelVersion.objects.filter(pk=first.pk).update(status=ModelStatus.RETIRED)
    usurper = ModelVersion.objects.create(
        project=vessel_project,
        number=3,
        family="metadata_mlp",
        status=ModelStatus.CHAMPION,
        weights_path=first.weights_path,
    )
    scoring_request(version=candidate)
    job = run_next_job(executor)
    candidate.refresh_from_db()
    assert candidate.status == ModelStatus.REJECTED and "v3 reigns now" in job.result["promotion_rule"]
    assert ModelVersion.objects.get(project=vessel_project, status=ModelStatus.CHAMPION) == usurper


# ---------------------------------------------------------------------------------------------------- live events
def _connect(user, slug: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(ProjectEventsConsumer.as_asgi(), f"/ws/projects/{slug}/")
    communicator.scope["user"] = user
    communicator.scope["url_route"] = {"kwargs": {"slug": slug}}
    return communicator


async def _drain(communicator, quiet: float = 0.5) -> list[dict]:
    """Return every event received until the socket has been quiet for `quiet` seconds."""
    events = []
    while not await communicator.receive_nothing(timeout=quiet):
        events.append(await communicator.receive_json_from())
    return events


@pytest.mark.django_db(transaction=True)
def test_leads_hear_progress_and_everyone_hears_the_rerank_and_queue_size(vessel_project, lead, annotator, tmp_path):
    project_update(project=vessel_project, settings={"overlap_rate": 0.0})
    cohort = vessel_cohort(vessel_project, tmp_path / "xa", patients=3, runs=2)
    item = next(iter(cohort))

    async def scenario():
        from channels.db import database_sync_to_async

        lead_socket, annotator_socket = _connect(lead, vessel_project.slug), _connect(annotator, vessel_project.slug)
        assert (await lead_socket.connect())[0] and (await annotator_socket.connect())[0]
        job = await database_sync_to_async(training_request)(project=vessel_project, by=lead)
        claimed = await database_sync_to_async(job_claim)()
        await database_sync_to_async(job_report)(
            job=claimed, reports=[{"phase": "training", "epoch": 1, "loss": 0.7, "done": 1, "total": 4}]
        )
        await database_sync_to_async(queue_rerank)(project=vessel_project)
        await database_sync_to_async(label_submit)(
            item=item, author=annotator, payload={"vessel": "LCA"}, base_version=None
        )
        await database_sync_to_async(orchestrator_tick)()
        heard_by_lead = await _drain(lead_socket)
        heard_by_annotator = await _drain(annotator_socket)
        await lead_socket.disconnect()
        await annotator_socket.disconnect()
        return job.pk, heard_by_lead, heard_by_annotator

    job_id, lead_events, annotator_events = async_to_sync(scenario)()
    progress = [e for e in lead_events if e["event"] == "job" and e["status"] == JobStatus.RUNNING]
    assert progress[-1]["job"] == job_id and progress[-1]["progress"] == 0.25
    assert progress[-1]["detail"]["loss"] == 0.7 and progress[-1]["detail"]["epoch"] == 1
    for events in (lead_events, annotator_events):
        reranked = [e for e in events if e["event"] == "reranked"]
        assert reranked and reranked[0]["strategy"] == "cold_start" and reranked[0]["items"] == 6
        assert [e["open"] for e in events if e["event"] == "queue"] == [5]
    assert not [e for e in annotator_events if e["event"] in ("job", "model", "scored")]


@pytest.mark.django_db
@pytest.mark.usefixtures("judge_promotes")
def test_a_batch_strategy_ranks_on_the_metadata_champions_embeddings(labelled, vessel_project, lead, executor):
    project_update(
        project=vessel_project, settings={"acquisition_strategy": "kcenter_uncertain", "queue_batch_size": 3}
    )
    champion = first_champion(vessel_project, lead, executor)
    assert champion.family == "metadata_mlp"
    queue = ProjectQueue.objects.get(project=vessel_project)
    assert (queue.model_version, queue.strategy, queue.ranked_items) == (champion, "kcenter_uncertain", 6)
    embeddings = Prediction.objects.filter(model_version=champion).values_list("embedding", flat=True)
    assert all(vector and len(vector) == 32 for vector in embeddings)


# ---------------------------------------------------------------------------------------------------- concurrency
@pytest.mark.django_db(transaction=True)
def test_jobs_of_different_projects_run_at_once_and_a_projects_jobs_one_after_another(
    vessel_project, oct_project, monkeypatch
):
    import threading
    import time as clock

    from annotation.services import orchestrator

    spans: dict[int, tuple[int, float, float]] = {}
    lock = threading.Lock()

    def fake_run(*, job, executor, poll_seconds):
        started = clock.monotonic()
        clock.sleep(0.4)
        Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
        with lock:
            spans[job.pk] = (job.project_id, started, clock.monotonic())

    monkeypatch.setattr(orchestrator, "job_run", fake_run)
    first = Job.objects.create(project=vessel_project, kind=JobKind.TRAIN)
    second = Job.objects.create(project=vessel_project, kind=JobKind.SCORE)
    other = Job.objects.create(project=oct_project, kind=JobKind.TRAIN)
    slots = orchestrator.JobSlots(executor=None, slots=3)
    started = slots.fill()
    # One job per project: the vessel project's second job waits although a slot is free.
    assert {job.pk for job in started} == {first.pk, other.pk}
    assert slots.busy_projects() == {vessel_project.pk, oct_project.pk}
    deadline = clock.monotonic() + 30
    while Job.objects.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).exists():
        slots.fill()
        assert clock.monotonic() < deadline
        clock.sleep(0.05)
    slots.wait()
    assert set(spans) == {first.pk, second.pk, other.pk}
    overlap = min(spans[first.pk][2], spans[other.pk][2]) - max(spans[first.pk][1], spans[other.pk][1])
    assert overlap > 0.2  # the two projects' jobs ran side by side
    assert spans[second.pk][1] >= spans[first.pk][2]  # the project's second job started after its first ended
