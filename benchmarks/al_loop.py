"""The platform's active-learning loop, run for real on a throw-away database (used by `benchmarks.al_simulation`).

Nothing here trains or ranks by itself: a synthetic cohort goes in through `import_run`, the split is fixed and
locked with `splits_configure`, the lead labels the held-out test and validation items from the truth, the
orchestrator cold-starts the queue, and then a simulated annotator leases items with `item_next` and answers
them from the generator's truth with `label_submit`. Every `step` labels a training is queued with
`training_request` and every job is claimed (`job_claim`) and run (`job_run`) on an `InlineExecutor`: the
training, then, when the candidate beats the champion on the held-out test set, the scoring that promotes it
and re-ranks the queue by the project's acquisition strategy. Before the first champion, the newest (rejected)
model's scoring re-ranks the queue the same way, as it does in the platform.

The starting state (database file and media folder) is saved once per cohort and restored before each
strategy, so every strategy starts from the same labelled test/validation set, queue and job numbers.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import SYNTHETIC_PSEUDONYM_KEY

DATABASE = "lumen.sqlite3"
MEDIA = "media"


@dataclass(frozen=True)
class Cohort:
    """The synthetic cohort of one task: how many patients (OCT: pullbacks), image size and frames."""

    n: int
    size: int
    frames: tuple[int, int] = (0, 0)  # XA: run length range; OCT: frames per pullback (first value)
    runs_per_patient: int = 4  # XA only
    neither_rate: float = 0.0  # XA only


@dataclass(frozen=True)
class Plan:
    """One task's simulation: cohort, training hyper-parameters, labels per round and the label budget."""

    task: str
    cohort: Cohort
    hparams: dict[str, Any]
    step: int
    budget: int
    test_fraction: float
    validation_fraction: float
    # A second cohort, generated with its own seed, that is never imported or labelled: every champion and
    # candidate is also judged on it (None: not measured).
    fresh: Cohort | None = None
    # Vessel type: before any label, train the project's frame-interpolation model on its imported runs (with
    # these interpolation parameters) and start the video networks from its encoder (None: no pretraining).
    pretrain: dict[str, Any] | None = None
    # The model family every round trains (None: the task chooses by the labels, as the platform does).
    family: str | None = None


@dataclass(frozen=True)
class Start:
    """A saved starting state and what the simulated annotator needs to answer from the truth."""

    saved: Path
    project_id: int
    lead_id: int
    annotator_id: int
    answers: dict[int, Any]  # item id -> label payload the truth gives
    splits: dict[str, int]  # items per split
    trivial: float  # the test metric of a model that knows nothing (see `trivial_metric`)
    seconds: dict[str, float]  # generation, import, labelling of the held-out items
    fresh_root: str = ""  # the never-labelled cohort's folder, and its examples (refs relative to it)
    fresh: tuple = ()


@dataclass(frozen=True)
class Round:
    """The state after one training round."""

    labels: int  # annotator labels of training-pool items so far
    version: int
    family: str
    candidate: float | None  # this round's candidate on the held-out test set
    champion: float | None  # the champion after this round (promoted candidates only)
    promoted: bool
    train_seconds: float
    score_seconds: float
    # On the never-labelled cohort (None when the plan has none): the champion, the latest candidate, the
    # scikit-learn baseline trained on the same human labels, the champion's ECE, and whether the round's
    # keep/replace decision is contradicted there beyond its interval (None: nothing was decided).
    champion_fresh: float | None = None
    candidate_fresh: float | None = None
    baseline_fresh: float | None = None
    baseline_test: float | None = None
    champion_ece: float | None = None
    contradicted: bool | None = None
    rule: str = ""


# ---------------------------------------------------------------------------------------------------- Django
def django_setup(root: Path) -> None:
    """Point Django at a SQLite file and a media folder under `root`, set it up and migrate."""
    root.mkdir(parents=True, exist_ok=True)
    os.environ["DATABASE_URL"] = f"sqlite:///{root / DATABASE}"
    os.environ["LUMEN_MEDIA_ROOT"] = str(root / MEDIA)
    os.environ["DJANGO_SETTINGS_MODULE"] = "webapp.settings.base"
    os.environ["LUMEN_LOG_LEVEL"] = "WARNING"
    os.environ["LUMEN_PSEUDONYM_KEY"] = SYNTHETIC_PSEUDONYM_KEY  # the same splits on every machine
    os.environ.pop("REDIS_URL", None)  # live events go to the in-memory channel layer, not a shared Redis
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _sqlite_copy(source: Path, target: Path) -> None:
    """Copy a SQLite database page by page (the backup API: consistent even in WAL mode)."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def _link_or_copy(source: str, target: str) -> None:
    """Hard-link a media file (inputs are never rewritten), or copy it where links are not possible."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def state_save(root: Path, name: str) -> Path:
    """Save the database and media folder under root/saved/name; return that folder."""
    from django.db import connection

    connection.close()
    saved = root / "saved" / name
    shutil.rmtree(saved, ignore_errors=True)
    saved.mkdir(parents=True)
    _sqlite_copy(root / DATABASE, saved / DATABASE)
    (root / MEDIA).mkdir(exist_ok=True)
    shutil.copytree(root / MEDIA, saved / MEDIA, copy_function=_link_or_copy)
    return saved


def state_restore(root: Path, saved: Path) -> None:
    """Make the working database and media folder exactly what was saved."""
    from django.db import connection

    connection.close()
    _sqlite_copy(saved / DATABASE, root / DATABASE)
    shutil.rmtree(root / MEDIA, ignore_errors=True)
    shutil.copytree(saved / MEDIA, root / MEDIA, copy_function=_link_or_copy)


# ---------------------------------------------------------------------------------------------------- cohort
def _import(project, folder: Path) -> list:
    from annotation.ingest.sources import ArchiveLimits, sources_from_path
    from annotation.services import import_run

    report = import_run(project=project, sources=sources_from_path(folder, limits=ArchiveLimits(members=100000)))
    summary = report.summary()
    if summary["rejected"]:
        raise RuntimeError(f"the cohort did not import cleanly: {summary}")
    return list(project.items.select_related("instance", "spect__rest"))


def cohort_answers(plan: Plan, project, folder: Path, seed: int) -> dict[int, Any]:
    """Generate the task's cohort, import it into the project; return each item's label payload from the truth."""
    from annotation.ingest.store import sha256_of_file
    from learning.cohorts import generate_oct_cohort, generate_spect_cohort, generate_xa_cohort
    from learning.masks import mask_encode

    c = plan.cohort
    if plan.task == "vessel_type":
        truths = generate_xa_cohort(
            folder,
            n_patients=c.n,
            runs_per_patient=c.runs_per_patient,
            frames=c.frames,
            size=c.size,
            seed=seed,
            neither_rate=c.neither_rate,
        )
        by_hash = {sha256_of_file(t.path): t for t in truths}
        items = _import(project, folder)
        return {item.pk: {"vessel": by_hash[item.instance.sha256].vessel} for item in items}
    if plan.task == "oct_calcium":
        truths = generate_oct_cohort(folder, n_pullbacks=c.n, frames=c.frames[0], size=c.size, seed=seed)
        by_hash = {sha256_of_file(t.path): t for t in truths}
        answers = {}
        for item in _import(project, folder):
            truth = by_hash[item.instance.sha256]
            quality = truth.frame_quality[item.frame_index]
            if quality == "ok":
                answers[item.pk] = {"mask": mask_encode(truth.masks[item.frame_index])}
            else:
                reason = "in_guide_catheter" if quality == "guide" else "poor_blood_clearance"
                answers[item.pk] = {"excluded": True, "exclusion_reason": reason}
        return answers
    truths = generate_spect_cohort(folder, n_patients=c.n, size=c.size, seed=seed, fmt="png")
    by_hash = {sha256_of_file(t.rest_path): t for t in truths}
    return {
        item.pk: {
            "stress": list(by_hash[item.spect.rest.sha256].stress_scores),
            "rest": list(by_hash[item.spect.rest.sha256].rest_scores),
        }
        for item in _import(project, folder)
    }


def start_build(plan: Plan, root: Path, seed: int) -> Start:
    """Build and save the starting state of one cohort: imported, split and locked, held-out items labelled.

    The queue is cold-started by the orchestrator, as a new project's queue is; the training pool is unlabelled.
    """
    from django.contrib.auth import get_user_model

    from annotation.models import Role, Split
    from annotation.services import label_submit, membership_set, project_create
    from annotation.services.orchestrator import orchestrator_tick
    from annotation.services.splits import splits_configure

    users = get_user_model()
    lead = users.objects.create_user(username=f"lead-{seed}")
    annotator = users.objects.create_user(username=f"annotator-{seed}")
    project = project_create(
        slug=f"al-{plan.task.replace('_', '-')}-{seed}",
        name=f"AL simulation {plan.task} seed {seed}",
        task_type=plan.task,
        creator=lead,
        settings={
            "overlap_rate": 0.0,  # one annotator: every item needs one label
            "gold_rate": 0.0,
            "retrain_every_n_labels": 0,  # the simulation asks for each round itself, every `step` labels
            "queue_batch_size": plan.step,  # k-center picks a batch the size of a round
            "training_hparams": plan.hparams,
            "test_fraction": plan.test_fraction,
            "validation_fraction": plan.validation_fraction,
            "split_seed": seed,
        },
    )
    membership_set(project=project, user=annotator, role=Role.ANNOTATOR)
    seconds = {}
    started = time.monotonic()
    answers = cohort_answers(plan, project, root / f"cohort-{seed}", seed)
    seconds["generate + import"] = time.monotonic() - started
    started = time.monotonic()
    splits_configure(project=project)  # every patient's split, test included
    splits_configure(project=project, lock_test=True)  # then the held-out test patients are fixed for good
    # The locked test set is labelled outside the budget (the platform hands it out at its own random share);
    # validation items come through the queue and count as labels like training items.
    for item in project.items.filter(split=Split.TEST).order_by("pk"):
        label_submit(item=item, author=lead, payload=answers[item.pk], base_version=None)
    orchestrator_tick()
    seconds["label test set"] = time.monotonic() - started
    if plan.pretrain is not None:
        started = time.monotonic()
        interpolation_pretrain(project, lead, plan.pretrain)
        seconds["pretrain interpolation"] = time.monotonic() - started
    fresh_root, fresh = "", ()
    if plan.fresh is not None:
        started = time.monotonic()
        fresh_root = str(root / f"fresh-{seed}")
        fresh = tuple(fresh_examples(plan.task, plan.fresh, Path(fresh_root), seed + 1000))
        seconds["generate fresh cohort"] = time.monotonic() - started
    splits = {
        name.value: project.items.filter(split=name).count() for name in (Split.TRAIN, Split.VALIDATION, Split.TEST)
    }
    test_ids = list(project.items.filter(split=Split.TEST).values_list("pk", flat=True))
    saved = state_save(root, f"start-{seed}")
    return Start(
        saved=saved,
        project_id=project.pk,
        lead_id=lead.pk,
        annotator_id=annotator.pk,
        answers=answers,
        splits=splits,
        trivial=trivial_metric(plan.task, [answers[pk] for pk in test_ids]),
        seconds=seconds,
        fresh_root=fresh_root,
        fresh=fresh,
    )


def interpolation_pretrain(project, lead, params: dict[str, Any]) -> None:
    """Train the project's frame-interpolation model through its job (no labels: the imported runs, held-out
    test patients left out by the job itself) and switch the project to starting its video networks from it."""
    from annotation.models import JobKind
    from annotation.services.interpolation import interpolation_train_request
    from annotation.services.jobs import job_claim
    from annotation.services.orchestrator import job_run
    from gpu_workers.executors import InlineExecutor

    interpolation_train_request(project=project, user=lead, params=params)
    executor = InlineExecutor()
    try:
        while (job := job_claim(kinds=(JobKind.INTERPOLATE,))) is not None:
            job_run(job=job, executor=executor, poll_seconds=0.1)
            job.refresh_from_db()
            if job.error:
                raise RuntimeError(f"interpolation pretraining failed: {job.error}")
    finally:
        executor.close()
    project.settings = {**project.settings, "pretrain_from_interpolation": True}
    project.save(update_fields=["settings"])


def fresh_examples(task: str, cohort: Cohort, folder: Path, seed: int) -> list:
    """Generate a cohort that is never imported; return its examples (truth targets, refs relative to folder)."""
    from learning.cohorts import generate_oct_cohort, generate_spect_cohort, generate_xa_cohort
    from learning.masks import mask_encode
    from learning.tasks import CineRef, Example, OctFrameRef, SpectRef, task_class

    spec = task_class(task)
    out = []
    if task == "vessel_type":
        truths = generate_xa_cohort(
            folder,
            n_patients=cohort.n,
            runs_per_patient=cohort.runs_per_patient,
            frames=cohort.frames,
            size=cohort.size,
            seed=seed,
            neither_rate=cohort.neither_rate,
        )
        for i, t in enumerate(truths):
            geometry = (t.primary_angle, t.secondary_angle, t.source_to_detector_mm, t.source_to_patient_mm)
            ref = CineRef(item_id=-(i + 1), path=str(t.path.relative_to(folder)), geometry=geometry)
            out.append(
                Example(
                    ref=ref, target=spec.target_from_payload({"vessel": t.vessel}), split="fresh", group=t.patient_id
                )
            )
    elif task == "oct_calcium":
        truths = generate_oct_cohort(folder, n_pullbacks=cohort.n, frames=cohort.frames[0], size=cohort.size, seed=seed)
        for t in truths:
            for frame in range(t.frames):
                if t.frame_quality[frame] != "ok":
                    continue
                ref = OctFrameRef(
                    item_id=-(len(out) + 1),
                    path=str(t.path.relative_to(folder)),
                    frame_index=frame,
                    rows=t.masks[frame].shape[0],
                    columns=t.masks[frame].shape[1],
                )
                out.append(Example(ref=ref, target=mask_encode(t.masks[frame]), split="fresh", group=t.patient_id))
    else:
        truths = generate_spect_cohort(folder, n_patients=cohort.n, size=cohort.size, seed=seed, fmt="png")
        for i, t in enumerate(truths):
            ref = SpectRef(
                item_id=-(i + 1),
                rest_path=t.rest_path.name,
                stress_path=t.stress_path.name,
                age=t.age,
                sex=t.sex,
                weight_kg=t.weight_kg,
                height_cm=t.height_cm,
            )
            payload = {"stress": list(t.stress_scores), "rest": list(t.rest_scores)}
            out.append(Example(ref=ref, target=spec.target_from_payload(payload), split="fresh", group=t.patient_id))
    return [e for e in out if e.target is not None]


def trivial_metric(task: str, test_payloads: list[Any]) -> float:
    """Return the primary test metric of a constant model: the most common class (vessel), an empty mask on
    every frame (OCT: an empty prediction of a calcium-free frame scores Dice 1), one score for all (SPECT)."""
    from learning import metrics
    from learning.masks import mask_decode
    from learning.tasks.vessel import CLASSES

    if task == "vessel_type":
        truth = np.array([p["vessel"] for p in test_payloads])
        values, counts = np.unique(truth, return_counts=True)
        return metrics.macro_f1(truth, np.full(len(truth), values[counts.argmax()]), CLASSES)
    if task == "oct_calcium":
        return float(np.mean([not mask_decode(p["mask"]).any() for p in test_payloads if "mask" in p]))
    return 0.5


# ---------------------------------------------------------------------------------------------------- the loop
def annotate(project, annotator, answers: dict[int, Any], n: int) -> int:
    """Lease up to n items the way the labelling page does and answer each from the truth; return how many."""
    from annotation.services import item_next, label_submit

    done = 0
    while done < n:
        lease = item_next(project=project, annotator=annotator)
        if lease is None:
            break
        label_submit(item=lease.item, author=annotator, payload=answers[lease.item_id], base_version=None)
        done += 1
    return done


def jobs_drain(executor) -> dict[str, float]:
    """Claim and run every queued job to the end (training, then any scoring); return seconds per kind."""
    from annotation.models import JobStatus
    from annotation.services.jobs import job_claim
    from annotation.services.orchestrator import job_run

    seconds: dict[str, float] = {}
    while (job := job_claim()) is not None:
        started = time.monotonic()
        job_run(job=job, executor=executor, poll_seconds=0.1)
        job.refresh_from_db()
        if job.status != JobStatus.SUCCEEDED:
            raise RuntimeError(f"{job.kind} job #{job.pk} ended {job.status}: {job.error}")
        seconds[job.kind] = seconds.get(job.kind, 0.0) + time.monotonic() - started
    return seconds


class FreshJudge:
    """Scores model versions on the never-labelled cohort (once each) and compares them there."""

    def __init__(self, task: str, start: Start) -> None:
        from learning.tasks import get_task

        self.task_name = task
        self.task = get_task(task, start.fresh_root) if start.fresh else None
        self.examples = list(start.fresh)
        self.cache: dict[int, list] = {}

    def scores(self, version) -> list:
        import torch

        from annotation.services.learning import read_weights
        from learning.tasks import ScoreRequest, score

        if version.pk not in self.cache:
            request = ScoreRequest(
                task=self.task_name,
                weights=read_weights(version),
                refs=tuple(e.ref for e in self.examples),
                media_root=str(self.task.media_root),
                batch_size=16,
                seed=0,
            )
            self.cache[version.pk] = score(self.task, request, torch.device("cpu"))
        return self.cache[version.pk]

    def metric(self, scores: list) -> float:
        scored = {s.item_id for s in scores}
        examples = [e for e in self.examples if e.ref.item_id in scored]
        return float(self.task.metric_value(*self.task.metric_rows(scores, examples)))

    def ece(self, scores: list) -> float | None:
        if self.task_name != "vessel_type":
            return None
        from learning import metrics
        from learning.tasks.vessel import CLASSES

        by_item = {s.item_id: s for s in scores}
        probs = [[by_item[e.ref.item_id].output["probabilities"][c] for c in CLASSES] for e in self.examples]
        return metrics.expected_calibration_error([e.target for e in self.examples], np.array(probs))

    def baseline_scores(self, train: list) -> list:
        """The trivial baseline, or for vessel type an outside logistic regression on the two angles."""
        if self.task_name != "vessel_type":
            return self.task.baseline_scores(train, [e.ref for e in self.examples])
        return angle_baseline_scores(train, [e.ref for e in self.examples])

    def contradicted(self, version, other: list) -> bool | None:
        """Whether the fresh cohort says the opposite of the keep/replace decision, beyond its 90 % interval.

        `other` is what the candidate was judged against: the champion's scores, or (first model) the trivial
        baseline's. None when nothing was decided.
        """
        from annotation.models import ModelStatus
        from learning.tasks.training import paired_comparison

        if version.status not in (ModelStatus.CHAMPION, ModelStatus.REJECTED):
            return None
        versus = paired_comparison(self.task, self.scores(version), other, self.examples, seed=0)
        low, high = versus["interval"]
        if version.status == ModelStatus.CHAMPION:
            return high is not None and high < 0
        return low is not None and low > 0


def angle_baseline_scores(train: list, refs: list) -> list:
    """Return the outside angle regression's answers for refs as item scores (`angle_regression_probabilities`)."""
    from benchmarks.common import angle_regression_probabilities
    from learning.tasks import ItemScore
    from learning.tasks.vessel import CLASSES

    usable = [e for e in train if e.ref.geometry is not None]
    probs = angle_regression_probabilities(
        [e.ref.geometry[:2] for e in usable], [e.target for e in usable], [r.geometry[:2] for r in refs], len(CLASSES)
    )
    return [
        ItemScore(
            item_id=ref.item_id,
            output={
                "probabilities": dict(zip(CLASSES, map(float, p), strict=True)),
                "vessel": CLASSES[int(p.argmax())],
            },
            uncertainty=0.0,
            detail={},
            confidence=float(p.max()),
        )
        for ref, p in zip(refs, probs, strict=True)
    ]


def human_examples(project, splits: tuple[str, ...]) -> list:
    """Return the project's human-labelled examples of these splits (what a baseline may train or test on)."""
    from annotation.training_data import training_set

    data = training_set(project)
    pool = {"train": data.train, "validation": data.validation, "test": data.test}
    return [e for split in splits for e in pool[split] if not e.is_pseudo]


def round_measure(project, labels: int, seconds: dict[str, float], judge: FreshJudge | None = None) -> Round:
    """Read the round's candidate and the champion from the stored model versions; judge them on the fresh
    cohort, with the baseline trained on the same human labels."""
    from annotation.models import ModelStatus, ModelVersion
    from learning.tasks import task_class

    spec = task_class(project.task_type)
    primary = spec.primary_metric
    latest = ModelVersion.objects.filter(project=project).order_by("-number").first()
    champion = ModelVersion.objects.filter(project=project, status=ModelStatus.CHAMPION).first()

    def test_metric(version) -> float | None:
        value = ((version.metrics or {}).get("test") or {}).get(primary) if version else None
        return None if value is None else float(value)

    extra: dict[str, Any] = {"rule": latest.decision_rule}
    if judge is not None and judge.examples:
        train = human_examples(project, ("train", "validation"))
        test = human_examples(project, ("test",))
        baseline_fresh = judge.baseline_scores(train)
        extra["baseline_fresh"] = judge.metric(baseline_fresh)
        if project.task_type == "vessel_type" and test:
            test_scores = angle_baseline_scores(train, [e.ref for e in test])
            extra["baseline_test"] = float(judge.task.metric_value(*judge.task.metric_rows(test_scores, test)))
        extra["candidate_fresh"] = judge.metric(judge.scores(latest))
        if champion is not None:
            champion_scores = judge.scores(champion)
            extra["champion_fresh"] = judge.metric(champion_scores)
            extra["champion_ece"] = judge.ece(champion_scores)
        against = latest.compared_with
        other = (
            judge.scores(against)
            if against is not None
            else judge.task.baseline_scores(human_examples(project, ("train",)), [e.ref for e in judge.examples])
        )
        extra["contradicted"] = judge.contradicted(latest, other)
    return Round(
        labels=labels,
        version=latest.number,
        family=latest.family,
        candidate=test_metric(latest),
        champion=test_metric(champion),
        promoted=latest.status == ModelStatus.CHAMPION,
        train_seconds=seconds.get("train", 0.0),
        score_seconds=seconds.get("score", 0.0),
        **extra,
    )


def strategy_run(
    plan: Plan, root: Path, start: Start, strategy: str, report: Callable[[Round], None] | None = None
) -> list[Round]:
    """Restore the starting state, set the strategy, then label, retrain and re-rank until the budget is spent."""
    from django.contrib.auth import get_user_model

    from annotation.models import Project
    from annotation.services import project_update
    from annotation.services.learning import training_request
    from gpu_workers.executors import InlineExecutor

    state_restore(root, start.saved)
    users = get_user_model()
    lead, annotator = users.objects.get(pk=start.lead_id), users.objects.get(pk=start.annotator_id)
    project = project_update(
        project=Project.objects.get(pk=start.project_id), settings={"acquisition_strategy": strategy}
    )
    executor = InlineExecutor()
    judge = FreshJudge(plan.task, start)
    rounds: list[Round] = []
    labels = 0
    try:
        while labels < plan.budget:
            got = annotate(project, annotator, start.answers, min(plan.step, plan.budget - labels))
            if got == 0:
                break  # the training pool is used up
            labels += got
            training_request(project=project, by=lead, family=plan.family, reason=f"simulation: {labels} labels")
            rounds.append(round_measure(project, labels, jobs_drain(executor), judge))
            if report is not None:
                report(rounds[-1])
    finally:
        executor.close()
    return rounds
