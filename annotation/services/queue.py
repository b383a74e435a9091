"""The labelling queue: rank the items, lease the next one safely, skip, release, expire; overlap and gold.

Two mechanisms keep it safe under concurrency:
- `Item.open_slots` counts how many more annotators may take an item (`annotation.services.slots` owns it). A
  lease takes a slot with a conditional `UPDATE … SET open_slots = open_slots - 1 WHERE open_slots > 0` on a row
  picked with `SELECT … FOR UPDATE SKIP LOCKED`; a release, skip or expiry gives the slot back with `F() + 1`,
  only for the lease whose state change this caller won. No check-then-act anywhere, so no item is leased twice
  or lost.
- The order lives in generations of `QueueEntry` rows (see `annotation.models.queue`): a re-rank inserts a new
  generation and switches to it in one transaction, so it never locks an item row that leasing needs.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import numpy as np
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Count, Exists, F, FloatField, OuterRef, Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone

from annotation.compiled import statement
from annotation.models import (
    Assignment,
    AssignmentKind,
    AssignmentState,
    Item,
    Label,
    LabelSource,
    Membership,
    ModelStatus,
    ModelVersion,
    Prediction,
    Project,
    ProjectQueue,
    QueueEntry,
    ReviewItem,
    Role,
    Split,
)
from annotation.project_settings import parse_settings
from annotation.selectors import tally_of
from annotation.services.errors import WorkspaceInputError
from annotation.services.events import members_event_send
from annotation.services.slots import (
    slots_add_place,
    slots_give_back,
    slots_hold,
    slots_recount,
    slots_require,
    slots_take,
    slots_take_next,
    slots_unhold,
    slots_widen,
)
from annotation.services.splits import splits_fill
from annotation.services.tallies import tally_handout, tally_label_added, tally_skipped, wanting_bump, wanting_init
from annotation.tasks import label_task
from learning.strategies import Candidate, cold_start_order, get_strategy

log = logging.getLogger(__name__)
OVERLAP_LABELS = 2
COLD_START = "cold_start"
_COPY_BATCH = 20000


def stable_draw(project_id: int, item_id: int, purpose: str) -> float:
    """Return a stable number in [0, 1) for the item, so a share of items is chosen the same way every time."""
    digest = hashlib.sha256(f"{purpose}:{project_id}:{item_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def wants_overlap(project_id: int, item_id: int, rate: float) -> bool:
    """Return whether the item belongs to the project's overlap share (labelled blind by two annotators)."""
    return stable_draw(project_id, item_id, "overlap") < rate


# ---------------------------------------------------------------------------------------------------- queue rows
def _locked_queue(project: Project) -> ProjectQueue:
    """Return the project's queue row, created if missing, locked until the transaction ends."""
    ProjectQueue.objects.bulk_create([ProjectQueue(project=project)], ignore_conflicts=True)
    return ProjectQueue.objects.select_for_update().get(pk=project.pk)


def queue_add_items(*, project: Project, item_ids: Sequence[int]) -> None:
    """Put newly created items into the current order, below every ranked item, and draw the overlap share.

    Runs inside the caller's transaction (the import that created the items) and locks the project's queue
    row, so a re-rank running at the same time either sees these items or is followed by them.
    """
    if not item_ids:
        return
    settings = parse_settings(project.task_type, project.settings)
    with transaction.atomic():
        queue = _locked_queue(project)
        if queue.wanting_items is None:
            wanting_init(queue)  # counts these new items too
        else:
            wanting_bump(project.pk, len(item_ids))
        overlap = [i for i in item_ids if wants_overlap(project.pk, i, settings.overlap_rate)]
        if overlap:
            slots_widen(item_ids=overlap, labels=OVERLAP_LABELS)
        _write_below_ranked(project, queue, item_ids)


def _write_below_ranked(project: Project, queue: ProjectQueue, item_ids: Sequence[int]) -> None:
    """Add the items to the current order below every ranked one, unranked until the next ranking (the caller
    holds the queue row's lock)."""
    lowest = (
        QueueEntry.objects.filter(project=project, generation=queue.generation)
        .order_by("priority")
        .values_list("priority", flat=True)
        .first()
    )
    below = min(lowest if lowest is not None else 1.0, 1.0) - 1.0
    _write_entries(project.pk, queue.generation, [(i, below) for i in sorted(item_ids)])
    ProjectQueue.objects.filter(pk=queue.pk).update(unranked_items=F("unranked_items") + len(item_ids))


def queue_readmit_items(*, project: Project, item_ids: Sequence[int]) -> int:
    """Put items a lead included again back into the order; return how many were placed anew.

    An item that kept its entry (no ranking since it was excluded) keeps its place; the others go below every
    ranked item, as new imports do, until the next ranking. Locks the project's queue row.
    """
    with transaction.atomic():
        queue = _locked_queue(project)
        placed = set(
            QueueEntry.objects.filter(project=project, generation=queue.generation, item_id__in=item_ids).values_list(
                "item_id", flat=True
            )
        )
        missing = sorted(set(item_ids) - placed)
        if missing:
            _write_below_ranked(project, queue, missing)
    return len(missing)


def queue_hold_items(*, project: Project, item_ids: Sequence[int]) -> int:
    """Take items out of labelling (held for a lead's decision, or excluded): they want no labels, leave the order,
    and open leases on them end. Labels they already have stay. Returns how many of them wanted labels."""
    with transaction.atomic():
        queue = _locked_queue(project)
        wanting_init(queue)  # counted before the change, so the bump below is the whole difference
        rows = list(
            Item.objects.select_for_update()
            .filter(project=project, pk__in=item_ids)
            .order_by("pk")
            .values_list("pk", "labellers", "required_labels", "excluded_at")
        )
        ids = [pk for pk, _, _, _ in rows]
        # An item a lead excluded wants no labels already.
        wanting = sum(1 for _, labellers, required, excluded_at in rows if labellers < required and not excluded_at)
        Assignment.objects.filter(item_id__in=ids, state=AssignmentState.LEASED).update(
            state=AssignmentState.RELEASED, finished_at=timezone.now()
        )
        slots_hold(item_ids=ids)
        QueueEntry.objects.filter(item_id__in=ids).delete()
        if wanting:
            wanting_bump(project.pk, -wanting)
    return wanting


def queue_release_items(*, project: Project, item_ids: Sequence[int]) -> int:
    """Give held items back to labelling: unlabelled ones join the queue as new items do, labelled ones count as
    done with the labels they have. Returns how many joined the queue."""
    with transaction.atomic():
        _locked_queue(project)
        held = list(
            Item.objects.select_for_update()
            .filter(project=project, pk__in=item_ids, required_labels=0)
            .order_by("pk")
            .values_list("pk", "labellers", "excluded_at")
        )
        fresh = [pk for pk, labellers, _ in held if labellers == 0]
        slots_unhold(labelled=[pk for pk, labellers, _ in held if labellers], fresh=fresh)
        # An item a lead excluded meanwhile waits, wanting its label, until it is included (`queue_readmit_items`).
        joining = [pk for pk, labellers, excluded_at in held if labellers == 0 and not excluded_at]
        queue_add_items(project=project, item_ids=joining)
    return len(joining)


def _write_entries(project_id: int, generation: int, rows: Iterable[tuple[int, float]]) -> int:
    """Insert (item, priority) entries of one generation in bulk (COPY on PostgreSQL); return the count."""
    count = 0
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            sql = "COPY annotation_queueentry (project_id, generation, item_id, priority) FROM STDIN"
            with cursor.cursor.copy(sql) as copy:
                for item_id, priority in rows:
                    copy.write_row((project_id, generation, item_id, priority))
                    count += 1
        return count
    batch: list[QueueEntry] = []
    for item_id, priority in rows:
        batch.append(QueueEntry(project_id=project_id, generation=generation, item_id=item_id, priority=priority))
        if len(batch) >= _COPY_BATCH:
            count += len(QueueEntry.objects.bulk_create(batch))
            batch = []
    return count + len(QueueEntry.objects.bulk_create(batch))


# ---------------------------------------------------------------------------------------------------- ranking
def items_wanting_labels(project: Project) -> list[int]:
    """Return the ids of the project's non-gold items with fewer labelling annotators than they need (held items
    need none): what the queue ranks and a model scores. Items a lead excluded are not among them."""
    labelled = Label.objects.filter(item=OuterRef("pk"))
    open_items = Item.objects.filter(project=project, is_gold=False, excluded_at__isnull=True)
    ids = list(
        open_items.filter(required_labels__gt=0).filter(~Exists(labelled)).values_list("pk", flat=True).order_by()
    )
    partial = (
        open_items.filter(required_labels__gt=1)
        .filter(Exists(labelled))
        .annotate(n=Count("labels__author", filter=Q(labels__superseded_at__isnull=True), distinct=True))
        .filter(n__lt=F("required_labels"))
        .values_list("pk", flat=True)
    )
    return ids + list(partial)


def cold_start_features(project: Project, ids: Sequence[int]) -> np.ndarray:
    """Return per-item features for the order before any model: what each item's metadata says about it (the
    task's `cold_start_rows`). Missing values are 0 after standardisation."""
    rows = label_task(project.task_type).cold_start_rows(project, Item.objects.filter(pk__in=ids))
    width = len(next(iter(rows.values()))) if rows else 1
    out = np.array([[np.nan if v is None else float(v) for v in rows.get(i, (None,) * width)] for i in ids])
    return out.reshape(len(ids), width)


def _scored_candidates(version: ModelVersion, ids: Sequence[int], strategy, head: int) -> list[Candidate]:
    """Return the candidates the version has scored, with the detail key and embeddings the strategy needs."""
    wanted = set(ids)
    key = strategy.required_key or "least_confidence"
    rows = [
        (item_id, u, value)
        for item_id, u, value in Prediction.objects.filter(model_version=version, uncertainty__isnull=False)
        # The score is read as a number in SQL: decoding a million JSON values in Python costs seconds.
        .annotate(score=Cast(KeyTextTransform(key, "uncertainty_detail"), FloatField()))
        .values_list("item_id", "uncertainty", "score")
        .iterator(chunk_size=20000)
        if item_id in wanted and u is not None  # never None (filtered in SQL): says so to the type checker
    ]
    embeddings: dict[int, np.ndarray] = {}
    pool = strategy.embedding_pool(head)
    if pool and rows:
        top = sorted(rows, key=lambda r: (-r[1], r[0]))[:pool]
        embeddings = {
            item_id: np.asarray(vector, dtype=np.float64)
            for item_id, vector in Prediction.objects.filter(
                model_version=version, item_id__in=[r[0] for r in top]
            ).values_list("item_id", "embedding")
            if vector is not None
        }
    return [
        Candidate(
            item_id=item_id,
            uncertainty=u,
            detail={} if value is None else {key: float(value)},
            embedding=embeddings.get(item_id),
        )
        for item_id, u, value in rows
    ]


def queue_order(project: Project, version: ModelVersion | None, seed: int = 0) -> tuple[list[int], str]:
    """Return the ids of the items wanting labels in queue order, and the name of what ordered them.

    With a model version: the project's acquisition strategy over that version's stored scores (a strategy
    never runs a model); items it has not scored follow in cold-start order. Without one: cold start, a
    spread-out batch over the items' own metadata, then the rest at random.
    """
    settings = parse_settings(project.task_type, project.settings)
    rng = np.random.default_rng(seed)
    wanting = items_wanting_labels(project)
    held_out = set(
        Item.objects.filter(project=project, split=Split.TEST, required_labels__gt=0).values_list("pk", flat=True)
    )
    ids = [i for i in wanting if i not in held_out]
    head = settings.queue_batch_size
    ordered: list[int] = []
    name = COLD_START
    if version is not None:
        strategy = get_strategy(settings.acquisition_strategy)
        candidates = _scored_candidates(version, ids, strategy, head)
        ordered = strategy.order(candidates, head, rng)
        name = settings.acquisition_strategy
    done = set(ordered)
    rest = [i for i in ids if i not in done]
    if rest:
        ordered += cold_start_order(rest, cold_start_features(project, rest), head, rng)
    test = sorted((i for i in wanting if i in held_out), key=lambda i: (stable_draw(project.pk, i, "test-order"), i))
    labelled_test = len(held_out) - sum(1 for i in wanting if i in held_out)
    first = max(settings.promotion_min_test_items - labelled_test, 0) if settings.test_handout_rate > 0 else 0
    return interleave_test(ordered, test, settings.test_handout_rate, first=first), name


def interleave_test(ordered: Sequence[int], test: Sequence[int], rate: float, first: int = 0) -> list[int]:
    """Return `ordered` with the held-out test items placed so that a `rate` share of hand-outs are test items.

    Test items keep their own random order (a keyed hash, never a model's score). The `first` of them lead
    the queue (the test labels a first model needs before it can be judged); after them hand-out k (from 0)
    is a test item when floor((k + 1) · rate) grows. Test items left over (or all of them at rate 0) come last.
    """
    tests = list(test)
    out: list[int] = tests[:first]
    lead = len(out)
    main, tests = iter(ordered), tests[first:]
    placed = 0
    for item_id in main:
        while placed < len(tests) and math.floor((len(out) - lead + 1) * rate + 1e-9) > placed:
            out.append(tests[placed])
            placed += 1
        out.append(item_id)
    out.extend(tests[placed:])
    return out


def queue_rerank(*, project: Project, version: ModelVersion | None = None, seed: int = 0) -> ProjectQueue:
    """Rewrite the order of every item wanting labels as a new generation and switch to it atomically.

    Locks the project's queue row for the whole re-rank (imports wait; leasing does not), and reads the
    items after taking the lock, so an import that committed first is ranked and one that waits is added
    to the new generation. A crash before the switch commits leaves the old order in place.
    """
    started = time.monotonic()
    splits_fill(project=project)  # every item's split is known before the test items are set apart
    with transaction.atomic():
        _locked_queue(project)
        ordered, name = queue_order(project, version, seed)
        return queue_set_order(project=project, item_ids=ordered, strategy=name, version=version, started=started)


def queue_set_order(
    *,
    project: Project,
    item_ids: Sequence[int],
    strategy: str,
    version: ModelVersion | None = None,
    started: float | None = None,
) -> ProjectQueue:
    """Make `item_ids` (best first) the project's queue order: write a new generation, switch, drop the old.

    Locks the project's queue row; readers see the old order or the new one, never a mix.
    """
    started = time.monotonic() if started is None else started
    with transaction.atomic():
        queue = _locked_queue(project)
        generation = queue.generation + 1
        total = len(item_ids)
        rows = ((item_id, float(total - rank)) for rank, item_id in enumerate(item_ids))
        written = _write_entries(project.pk, generation, rows)
        queue.generation = generation
        queue.model_version = version
        queue.strategy = strategy
        queue.ranked_items = written
        queue.ranked_at = timezone.now()
        queue.unranked_items = 0
        queue.rank_seconds = round(time.monotonic() - started, 3)
        queue.save()
        members_event_send(
            project.pk,
            {
                "event": "reranked",
                "model_version": version.number if version else None,
                # Ranked by a model not (yet) promoted: the newest one, before the project's first champion.
                "provisional": version is not None and version.status != ModelStatus.CHAMPION,
                "strategy": strategy,
                "items": written,
            },
        )
    QueueEntry.objects.filter(project=project).exclude(generation=generation).delete()
    log.info("project %s queue ordered by %s: %s items in %.2f s", project.pk, strategy, written, queue.rank_seconds)
    return queue


def queue_open_count(project: Project) -> int:
    """Return how many non-gold items may still be handed out (unlabelled slots, leased ones not counted)."""
    return Item.objects.filter(project=project, open_slots__gt=0, is_gold=False).count()


# ---------------------------------------------------------------------------------------------------- leasing
_ANY_EXPIRED_SQL = "SELECT 1 FROM annotation_assignment WHERE state = %(leased)s AND expires_at <= %(now)s LIMIT 1"


def leases_expire(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Close leases past their expiry and return their items to the queue; return how many expired.

    Locks the expired leases with SKIP LOCKED, so two callers never return the same slot twice.
    """
    now = now or timezone.now()
    # Usually nothing has expired (every `next` asks): one index lookup, outside a transaction, says so.
    with connection.cursor() as cursor:
        cursor.execute(_ANY_EXPIRED_SQL, {"leased": AssignmentState.LEASED.value, "now": now})
        if cursor.fetchone() is None:
            return 0
    expired = Assignment.objects.filter(state=AssignmentState.LEASED, expires_at__lte=now)
    with transaction.atomic():
        stale = list(expired.select_for_update(skip_locked=True).values_list("pk", "item_id", "kind")[:limit])
        if not stale:
            return 0
        Assignment.objects.filter(pk__in=[pk for pk, _, _ in stale], state=AssignmentState.LEASED).update(
            state=AssignmentState.EXPIRED, finished_at=now
        )
        slots_give_back((item_id, kind) for _, item_id, kind in stale)
    return len(stale)


def _gold_due(project: Project, annotator: User, rate: float) -> bool:
    """Return whether this hand-out should be a gold item: gold hand-outs so far stay at rate x all hand-outs."""
    if rate <= 0:
        return False
    counts = tally_of(project, annotator.pk)
    return counts["gold_handouts"] < math.floor(rate * (counts["handouts"] + 1) + 1e-9)


def _not_done_by(annotator: User, item_ref: str):
    """Return the filters excluding items the annotator labelled, skipped or holds a lease on."""
    mine = Label.objects.filter(item=OuterRef(item_ref), author=annotator)
    held = Assignment.objects.filter(
        item=OuterRef(item_ref), annotator=annotator, state__in=(AssignmentState.SKIPPED, AssignmentState.LEASED)
    )
    return ~Exists(mine), ~Exists(held)


def _lease_gold(project: Project, annotator: User, expires_at: datetime) -> Assignment | None:
    item_id = (
        Item.objects.filter(project=project, is_gold=True, excluded_at__isnull=True)
        .filter(*_not_done_by(annotator, "pk"))
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )
    if item_id is None:
        return None
    lease = Assignment.objects.create(
        item_id=item_id, annotator=annotator, expires_at=expires_at, kind=AssignmentKind.GOLD
    )
    tally_handout(project_id=project.pk, annotator_id=annotator.pk, gold=True)
    lease.fresh = True
    return lease


_REVIEW_SQL = """
SELECT ri.item_id FROM annotation_reviewitem ri JOIN annotation_reviewrequest rr ON rr.id = ri.request_id
JOIN annotation_item i ON i.id = ri.item_id
WHERE rr.project_id = %(project)s AND rr.annotator_id = %(annotator)s AND ri.resolved_at IS NULL
  AND i.excluded_at IS NULL{after}
ORDER BY rr.created_at, ri.id
LIMIT 1
"""


def _lease_review(
    project: Project, annotator: User, expires_at: datetime, after: int | None = None
) -> Assignment | None:
    params = {"project": project.pk, "annotator": annotator.pk, "after": after}
    with connection.cursor() as cursor:
        cursor.execute(_REVIEW_SQL.format(after="" if after is None else " AND ri.item_id <> %(after)s"), params)
        row = cursor.fetchone()
    if row is None:
        return None
    return Assignment.objects.create(
        item_id=row[0], annotator=annotator, expires_at=expires_at, kind=AssignmentKind.REVIEW
    )


# The annotator's oldest open lease in the project (other than `after`), extended, in one statement.
_RESUME_SQL = """
UPDATE annotation_assignment SET expires_at = %(expires_at)s
WHERE state = %(leased)s AND id = (
    SELECT a.id FROM annotation_assignment a JOIN annotation_item i ON i.id = a.item_id
    WHERE a.annotator_id = %(annotator)s AND a.state = %(leased)s AND i.project_id = %(project)s{after}
    ORDER BY a.leased_at, a.id
    LIMIT 1{lock}
)
RETURNING id
"""


def _lease_resume(project: Project, annotator: User, expires_at: datetime, after: int | None) -> Assignment | None:
    sql = _RESUME_SQL.format(
        after="" if after is None else " AND a.item_id <> %(after)s",
        lock=" FOR UPDATE OF a" if connection.features.has_select_for_update_of else "",
    )
    params = {
        "project": project.pk,
        "annotator": annotator.pk,
        "after": after,
        "expires_at": expires_at,
        "leased": AssignmentState.LEASED.value,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    # Usually there is none (a resumed lease is a reloaded page): the row is read only when there is one.
    return None if row is None else Assignment.objects.get(pk=row[0])


def _lease_queued(project: Project, annotator: User, expires_at: datetime) -> Assignment | None:
    item_id = slots_take_next(project_id=project.pk, annotator_id=annotator.pk)
    if item_id is None:
        return None
    lease = Assignment.objects.create(item_id=item_id, annotator=annotator, expires_at=expires_at)
    tally_handout(project_id=project.pk, annotator_id=annotator.pk, gold=False)
    lease.fresh = True  # an item they never labelled: no label or review of theirs to look up
    return lease


def item_next(*, project: Project, annotator: User, after: int | None = None) -> Assignment | None:
    """Lease the next item to the annotator, or return None when nothing is left for them.

    `after`: the item the annotator is working on, for a browser fetching the following one ahead of time; it
    is neither resumed nor leased again, so an annotator holds at most that item and the one after it.

    An open lease of theirs is resumed (and extended) first, then their labels a lead sent back for review,
    oldest request first. Gold items are mixed in at the project's gold
    rate; otherwise the best-ranked item with an open slot that they have not labelled or skipped is leased
    (row lock with SKIP LOCKED plus a conditional slot update), so no item is ever leased beyond its slots.
    """
    now = timezone.now()
    settings = parse_settings(project.task_type, project.settings)
    expires_at = now + timedelta(minutes=settings.lease_minutes)
    leases_expire(now=now)
    with transaction.atomic():
        mine = _lease_resume(project, annotator, expires_at, after)
        if mine is not None:
            return mine
        review = _lease_review(project, annotator, expires_at, after)
        if review is not None:
            return review
        if _gold_due(project, annotator, settings.gold_rate):
            gold = _lease_gold(project, annotator, expires_at)
            if gold is not None:
                return gold
        return _lease_queued(project, annotator, expires_at)


def _close_lease(item: Item, annotator: User, state: str, **fields) -> Assignment | None:
    """Move the annotator's open lease of the item to `state` and give its slot back; return it, or None."""
    now = timezone.now()
    lease = (
        Assignment.objects.select_for_update()
        .filter(item=item, annotator=annotator, state=AssignmentState.LEASED)
        .first()
    )
    if lease is None:
        return None
    if not Assignment.objects.filter(pk=lease.pk, state=AssignmentState.LEASED).update(
        state=state, finished_at=now, **fields
    ):
        return None
    slots_give_back([(item.pk, lease.kind)])
    lease.refresh_from_db()
    return lease


def item_skip(*, item: Item, annotator: User, reason: str) -> Assignment:
    """Skip the item with a reason; it goes back to the queue for others and is never offered to them again."""
    reason = (reason or "").strip()
    if not reason:
        raise WorkspaceInputError("reason", "a skip needs a reason")
    if len(reason) > 500:
        raise WorkspaceInputError("reason", "must be at most 500 characters")
    with transaction.atomic():
        Item.objects.select_for_update().filter(pk=item.pk).values_list("pk", flat=True).first()
        lease = _close_lease(item, annotator, AssignmentState.SKIPPED, skip_reason=reason)
        direct = lease is None
        if lease is not None:
            if lease.kind == AssignmentKind.REVIEW:  # declined: the label stays as it was, the request is closed
                ReviewItem.objects.filter(item=item, request__annotator=annotator, resolved_at__isnull=True).update(
                    resolved_at=timezone.now()
                )
        else:
            now = timezone.now()
            lease = Assignment.objects.create(
                item=item,
                annotator=annotator,
                state=AssignmentState.SKIPPED,
                expires_at=now,
                finished_at=now,
                skip_reason=reason,
            )
        # A skip without a lease counts among hand-outs for the gold rate, as every non-review assignment does.
        tally_skipped(item=item, annotator_id=annotator.pk, handout=direct)
        return lease


def assignment_release(*, item: Item, annotator: User) -> int:
    """Give the item back to the queue unlabelled; return how many leases were released (0 or 1)."""
    with transaction.atomic():
        return int(_close_lease(item, annotator, AssignmentState.RELEASED) is not None)


# A new version by an annotator answers a lead's open review request of their label.
_RESOLVE_REVIEW_SQL = """
UPDATE annotation_reviewitem SET resolved_label_id = %(label)s, resolved_at = %(now)s
WHERE item_id = %(item)s AND resolved_at IS NULL
  AND request_id IN (SELECT id FROM annotation_reviewrequest WHERE annotator_id = %(annotator)s)
"""
_LEAVE_ORDER_SQL = "DELETE FROM annotation_queueentry WHERE item_id = %s"


def queue_label_added(
    *,
    item: Item,
    author: User,
    label: Label,
    leased: bool,
    first: bool,
    counts: tuple[int, int] | None = None,
) -> None:
    """Account for a stored label in the queue (inside the label's transaction).

    A new version by an annotator whose label a lead sent back answers that review.

    A label submitted under the author's lease keeps the slot the lease took. A first label without a lease
    (a lead labelling directly, a late submit after expiry) takes a slot if one is open, except an adjudicating
    lead's: on an item that still wants labels it gets a place of its own (`slots_add_place`), so the blind
    annotators it is still due keep theirs. An item with every label it needs leaves the current order.

    The item row is locked: label_submit locks it first and passes the (labellers, required_labels) it read under
    the lock as `counts` (and refreshes `item.excluded_at`), so two last labels submitted at once see each other.
    """
    if counts is None:
        labellers, required, item.excluded_at = (
            Item.objects.select_for_update()
            .filter(pk=item.pk)
            .values_list("labellers", "required_labels", "excluded_at")
            .get()
        )
    else:
        labellers, required = counts
    if first and not leased and not item.is_gold:
        if label.source == LabelSource.ADJUDICATION and labellers < required:
            slots_add_place(item_id=item.pk)
            required += 1
        else:
            slots_take(item_id=item.pk)
    statement(_RESOLVE_REVIEW_SQL, {"label": label.pk, "now": timezone.now(), "item": item.pk, "annotator": author.pk})
    if labellers + (1 if first else 0) >= required:
        statement(_LEAVE_ORDER_SQL, [item.pk])
    if first:  # last, as its final write takes the project's counter row (see tally_label_added)
        tally_label_added(item=item, author_id=author.pk, labellers=labellers, required=required)


# ---------------------------------------------------------------------------------------------------- overlap, gold
def queue_apply_overlap(*, project: Project) -> int:
    """Re-draw the overlap share of unlabelled items after the lead changed the overlap rate; return changes."""
    settings = parse_settings(project.task_type, project.settings)
    labelled = Label.objects.filter(item=OuterRef("pk"))
    changed: list[int] = []
    for pk, required in (
        Item.objects.filter(project=project, is_gold=False, required_labels__gt=0)  # held items stay held
        .filter(~Exists(labelled))
        .values_list("pk", "required_labels")
        .iterator(chunk_size=10000)
    ):
        want = OVERLAP_LABELS if wants_overlap(project.pk, pk, settings.overlap_rate) else 1
        if want != required:
            changed.append(pk)
    for start in range(0, len(changed), 5000):
        chunk = changed[start : start + 5000]
        with transaction.atomic():
            for pk in Item.objects.select_for_update().filter(pk__in=chunk).values_list("pk", flat=True):
                want = OVERLAP_LABELS if wants_overlap(project.pk, pk, settings.overlap_rate) else 1
                slots_require(item_id=pk, labels=want)
            slots_recount(item_ids=chunk)
    return len(changed)


def item_gold_set(*, item: Item, by: User, gold: bool) -> Item:
    """Mark or unmark a gold item (leads); a gold item must carry a lead's current label."""
    if gold:
        leads = Membership.objects.filter(project_id=item.project_id, role=Role.LEAD).values("user")
        has_lead_label = (
            Label.objects.current()
            .filter(item=item)
            .filter(Q(author__in=leads) | Q(author__is_superuser=True))
            .exists()
        )
        if not has_lead_label:
            raise WorkspaceInputError("is_gold", "label the item yourself first: a gold item carries a lead's label")
    Item.objects.filter(pk=item.pk).update(is_gold=gold)
    item.refresh_from_db(fields=["is_gold"])
    return item
