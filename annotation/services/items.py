"""A lead's actions on items chosen in the item browser: mark or unmark gold, send their labels back for review,
exclude them, include them again.

Each action runs in one transaction over every chosen item and answers how many items had each outcome; the
change is recorded in the rows it writes (`Item.excluded_at` / `excluded_by`, review requests with the lead who
sent them), in a live event for the project's leads and in the log (counts and user ids only).

**Exclusion** takes an item out of everything that asks for labels: it is never handed out (queue, gold or
review: its open slots are closed and its open leases released), never trained or evaluated on and never scored.
Its labels, predictions and history stay, and so does `required_labels`: including it again opens exactly the
places it had, and it returns to the queue at its old place (below the ranked items if the queue was ranked
since). Both directions keep the progress counters (`annotation.services.tallies`) equal to a recount: an item a
lead excluded wants no labels.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from annotation.models import (
    Assignment,
    AssignmentState,
    Item,
    Label,
    LabelSource,
    Membership,
    Project,
    ReviewItem,
)
from annotation.services.adjudication import review_request_create
from annotation.services.errors import WorkspaceInputError
from annotation.services.events import leads_event_send
from annotation.services.queue import item_gold_set, queue_readmit_items
from annotation.services.slots import slots_close, slots_recount
from annotation.services.tallies import tally_bump, wanting_bump

log = logging.getLogger(__name__)

BULK_MAX = 1000  # items one action may name
_NAMED = 20  # ids quoted in an error before "…"

Outcomes = dict[str, int]


def items_exclude(*, project: Project, by: User, item_ids: Sequence[int]) -> Outcomes:
    """Exclude the items from labelling, training and scoring; their labels are kept.

    Locks the items' rows (in id order, as a label's submit locks its item), then the annotators' tallies and the
    project's queue counter, the order every label takes them in.
    """
    with transaction.atomic():
        rows = _locked(project, item_ids)
        chosen = [pk for pk, _, _, excluded_at in rows if excluded_at is None]
        wanting = [pk for pk, labellers, required, excluded_at in rows if excluded_at is None and labellers < required]
        now = timezone.now()
        Item.objects.filter(pk__in=chosen).update(excluded_at=now, excluded_by=by)
        Assignment.objects.filter(item_id__in=chosen, state=AssignmentState.LEASED).update(
            state=AssignmentState.RELEASED, finished_at=now
        )
        slots_close(item_ids=chosen)
        _wanting_moved(project, wanting, -1)
    return {"excluded": len(chosen), "already_excluded": len(rows) - len(chosen)}


def items_include(*, project: Project, by: User, item_ids: Sequence[int]) -> Outcomes:
    """Give excluded items back to labelling, training and scoring as they were before.

    Locks the items' rows, the tallies and the queue counter in the same order as `items_exclude`.
    """
    with transaction.atomic():
        rows = _locked(project, item_ids)
        chosen = [pk for pk, _, _, excluded_at in rows if excluded_at is not None]
        Item.objects.filter(pk__in=chosen).update(excluded_at=None, excluded_by=None)
        slots_recount(item_ids=chosen)  # no lease is open on an excluded item: the places it wants reopen
        wanting = [
            pk for pk, labellers, required, excluded_at in rows if excluded_at is not None and labellers < required
        ]
        _wanting_moved(project, wanting, +1)
        # A gold item is handed out as gold, never from the order.
        queued = Item.objects.filter(pk__in=wanting, is_gold=False).values_list("pk", flat=True)
        queue_readmit_items(project=project, item_ids=list(queued))
    return {"included": len(chosen), "not_excluded": len(rows) - len(chosen)}


def _locked(project: Project, item_ids: Sequence[int]) -> list[tuple[int, int, int, datetime | None]]:
    """Lock the project's items among `item_ids`; return (id, labellers, required labels, excluded at) of each."""
    return list(
        Item.objects.select_for_update()
        .filter(project=project, pk__in=item_ids)
        .order_by("pk")
        .values_list("pk", "labellers", "required_labels", "excluded_at")
    )


def _wanting_moved(project: Project, item_ids: Sequence[int], sign: int) -> None:
    """Account for items that stopped (sign -1) or started (+1) wanting labels, after the change is written: the
    project's wanting count, and the tallies of everyone who labelled or skipped them (those items were or become
    part of what is not theirs to do)."""
    if not item_ids:
        return
    authors = Label.objects.current().filter(item_id__in=item_ids).values_list("author_id", "item_id")
    skippers = Assignment.objects.filter(item_id__in=item_ids, state=AssignmentState.SKIPPED).values_list(
        "annotator_id", "item_id"
    )
    excused = Counter(person for person, _ in set(authors) | set(skippers))
    for person in sorted(excused):  # in id order, as every label's transaction takes tally rows
        tally_bump(project.pk, person, excused=sign * excused[person])
    wanting_bump(project.pk, sign * len(item_ids))  # last: the project's one counter row


def items_gold_mark(*, project: Project, by: User, item_ids: Sequence[int]) -> Outcomes:
    """Mark the items gold; an item without a lead's current label is left as it is."""
    outcomes: Counter[str] = Counter()
    with transaction.atomic():
        for item in Item.objects.filter(project=project, pk__in=item_ids).order_by("pk"):
            if item.is_gold:
                outcomes["already_gold"] += 1
                continue
            try:
                item_gold_set(item=item, by=by, gold=True)
            except WorkspaceInputError:  # refused before it wrote anything
                outcomes["no_lead_label"] += 1
            else:
                outcomes["marked_gold"] += 1
    return {name: outcomes[name] for name in ("marked_gold", "already_gold", "no_lead_label")}


def items_gold_unmark(*, project: Project, by: User, item_ids: Sequence[int]) -> Outcomes:
    """Unmark gold items: they stop being mixed into annotators' work."""
    outcomes: Counter[str] = Counter()
    with transaction.atomic():
        for item in Item.objects.filter(project=project, pk__in=item_ids).order_by("pk"):
            if not item.is_gold:
                outcomes["not_gold"] += 1
                continue
            item_gold_set(item=item, by=by, gold=False)
            outcomes["unmarked_gold"] += 1
    return {name: outcomes[name] for name in ("unmarked_gold", "not_gold")}


def items_review_send(*, project: Project, by: User, item_ids: Sequence[int]) -> Outcomes:
    """Send the members' current labels of the items back to their authors for review (one request per author,
    as `review_request_create` makes them); an excluded item is not sent."""
    with transaction.atomic():
        items = dict(Item.objects.filter(project=project, pk__in=item_ids).values_list("pk", "excluded_at"))
        active = [pk for pk, excluded_at in items.items() if excluded_at is None]
        members = Membership.objects.filter(project=project).values("user")
        labels = (
            Label.objects.current()
            .filter(item_id__in=active, source=LabelSource.ANNOTATOR, author__in=members)
            .exclude(author=by)
            .values_list("author_id", "item_id")
        )
        by_author: dict[int, list[int]] = defaultdict(list)
        for author_id, item_id in labels:
            by_author[author_id].append(item_id)
        sent: set[int] = set()
        authors = {user.pk: user for user in User.objects.filter(pk__in=by_author)}
        for author_id in sorted(by_author):
            try:
                request = review_request_create(
                    project=project, annotator=authors[author_id], requested_by=by, item_ids=by_author[author_id]
                )
            except WorkspaceInputError:
                continue  # every one of their labels of these items already waits for their review
            sent.update(ReviewItem.objects.filter(request=request).values_list("item_id", flat=True))
    labelled = {item_id for ids in by_author.values() for item_id in ids}
    return {
        "sent_to_review": len(sent),
        "already_in_review": len(labelled - sent),
        "no_annotator_label": len(active) - len(labelled),
        "excluded": len(items) - len(active),
    }


# The actions the item browser offers, by the name the API takes.
ACTIONS: dict[str, Callable[..., Outcomes]] = {
    "mark_gold": items_gold_mark,
    "unmark_gold": items_gold_unmark,
    "send_to_review": items_review_send,
    "exclude": items_exclude,
    "include": items_include,
}


def items_bulk_apply(*, project: Project, by: User, action: str, item_ids: Sequence[int]) -> Outcomes:
    """Apply a lead's `action` to the project's items `item_ids` in one transaction; return the count per outcome.

    A name that is not an action, no ids, more than BULK_MAX, or ids that are not items of this project are
    refused (naming the field, and the ids) before anything changes.
    """
    run = ACTIONS.get(action)
    if run is None:
        raise WorkspaceInputError("action", f"must be one of {', '.join(ACTIONS)}")
    ids = list(dict.fromkeys(item_ids))
    if not ids:
        raise WorkspaceInputError("items", "choose at least one item")
    if len(ids) > BULK_MAX:
        raise WorkspaceInputError("items", f"at most {BULK_MAX} items at once, not {len(ids)}")
    found = set(Item.objects.filter(project=project, pk__in=ids).values_list("pk", flat=True))
    foreign = [pk for pk in ids if pk not in found]
    if foreign:
        named = ", ".join(str(pk) for pk in foreign[:_NAMED]) + (" …" if len(foreign) > _NAMED else "")
        raise WorkspaceInputError("items", f"not items of this project: {named}")
    with transaction.atomic():
        outcomes = run(project=project, by=by, item_ids=ids)
        leads_event_send(project.pk, {"event": "items_changed", "action": action, "outcomes": outcomes})
    log.info("project %s: lead %s applied %s to %s items: %s", project.pk, by.pk, action, len(ids), outcomes)
    return outcomes
