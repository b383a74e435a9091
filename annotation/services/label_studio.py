"""Label Studio round trip: push a project's items to a Label Studio project, pull the annotations made there back
as label versions with their authors, and write and read Label Studio JSON task files.

Everything goes through label-studio-sdk. What a task's labels look like in Label Studio (its labeling config,
label payload <-> result regions, prediction -> regions) belongs to the task plugin (annotation.tasks). Label Studio
is shown item ids, the titles annotators see, an opaque key per item and rendered de-identified images, served by
Lumen through signed, expiring, item-scoped links (the annotators' browsers are not logged into Lumen): never a
patient identifier. A pulled label becomes a new version through `label_submit` (history, tallies and slots as
for any label; nothing is overwritten), and a label equal to the author's current one adds nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.db import connection, transaction
from django.urls import reverse
from django.utils.crypto import salted_hmac

from annotation.credentials import CredentialUnreadable, credential_decrypt, credential_encrypt
from annotation.label_schemas import LabelPayloadError, label_payload_validate
from annotation.models import ExternalServer, Item, Label, LabelSource, Project, ServerKind
from annotation.project_settings import parse_settings
from annotation.selectors import champion_predictions, current_label, label_studio_items
from annotation.services.labels import LabelConflict, label_submit
from annotation.tasks import LabelTask
from annotation.tasks.label_studio import Regions

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio

log = logging.getLogger(__name__)

LINK_SALT = "annotation.label_studio.image"
KEY_SALT = "annotation.label_studio.item"
# Links to the rendered images live this long; a push renews those older than LINK_RENEW_DAYS.
LINK_DAYS = 90
LINK_RENEW_DAYS = 30
TIMEOUT_S = 30.0
IMPORT_BATCH = 500  # tasks per import request
# The advisory lock's first key (PostgreSQL): one exchange with Label Studio per project at a time.
LOCK_CLASS = 0x4C53


class LabelStudioInputError(ValueError):
    """A bad value from the lead (URL, token, file); `field` names it (answered 400)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class LabelStudioNotReady(Exception):
    """The project is not ready for this (no server, nothing pushed yet, a task without a mapping): answered 409."""


class LabelStudioUnavailable(Exception):
    """The Label Studio server did not answer, refused the token (`token_refused`) or failed (answered 502)."""

    def __init__(self, message: str, *, token_refused: bool = False) -> None:
        super().__init__(message)
        self.token_refused = token_refused


# ---------------------------------------------------------------------------------------------------- links
class ImageLinkInvalid(Exception):
    """The image link was not signed here, or names an image that is not (or no longer) shown."""


class ImageLinkExpired(Exception):
    """The image link is older than LINK_DAYS: a push renews the links of the tasks in Label Studio."""


def image_link(*, item_id: int, key: str, base_url: str) -> str:
    """Return a signed link to one rendered image of an item, valid LINK_DAYS days without a login."""
    token = signing.dumps({"i": item_id, "k": key, "t": int(time.time())}, salt=LINK_SALT)
    return base_url.rstrip("/") + reverse("api:label-studio-image", args=[token])


def image_link_read(token: str) -> tuple[int, str]:
    """Return (item id, image key) of a signed link; raise ImageLinkInvalid or ImageLinkExpired."""
    try:
        signed = signing.loads(token, salt=LINK_SALT, max_age=LINK_DAYS * 86400)
    except signing.SignatureExpired:
        raise ImageLinkExpired() from None
    except signing.BadSignature:
        raise ImageLinkInvalid() from None
    return int(signed["i"]), str(signed["k"])


def _link_age_days(url: Any, base_url: str) -> float | None:
    """Return how many days ago the link in `url` was signed (None: not a link of ours at this address)."""
    links = base_url.rstrip("/") + reverse("api:label-studio-image", args=["-"]).removesuffix("-/")
    if not isinstance(url, str) or not url.startswith(links):
        return None
    token = url.rstrip("/").rsplit("/", 1)[-1]
    try:
        signed = signing.loads(token, salt=LINK_SALT)
    except signing.BadSignature:
        return None
    return (time.time() - float(signed.get("t", 0))) / 86400


def item_key(task: LabelTask, item: Item) -> str:
    """Return the opaque key of what the item shows (the same file in another project: the same key; "" if none)."""
    raw = task.item_key(item)
    return salted_hmac(KEY_SALT, raw, secret=settings.PSEUDONYM_KEY, algorithm="sha256").hexdigest()[:32] if raw else ""


def task_data(task: LabelTask, item: Item, base_url: str) -> dict[str, Any]:
    """Return a Label Studio task's data for the item: links to its images, its id, key and title."""
    images = {name: image_link(item_id=item.pk, key=name, base_url=base_url) for name in task.label_studio_images(item)}
    return {**images, "lumen_item": item.pk, "lumen_key": item_key(task, item), "title": item.title}


# ---------------------------------------------------------------------------------------------------- talking
def _said(error: Exception) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        detail = " ".join(str(body[key]) for key in ("detail", "validation_errors") if body.get(key))
        return (detail or str(body))[:300]
    return str(body if body is not None else error)[:300]


@contextmanager
def _talking(url: str, doing: str) -> Iterator[None]:
    """Turn the SDK's and HTTP errors into LabelStudioUnavailable, saying what Lumen was doing."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    try:
        yield
    except ApiError as error:
        if error.status_code in (401, 403):
            raise LabelStudioUnavailable(
                f"Label Studio at {url} refused the API token while {doing} ({error.status_code}: "
                f"{_said(error)}); enter a valid token",
                token_refused=True,
            ) from None
        raise LabelStudioUnavailable(
            f"Label Studio at {url} answered {error.status_code} while {doing}: {_said(error)}"
        ) from None
    except httpx.HTTPError as error:
        raise LabelStudioUnavailable(f"Label Studio at {url} could not be reached while {doing}: {error}") from None
    except ValueError as error:  # not JSON, or not the JSON the SDK expects: not a Label Studio answer
        raise LabelStudioUnavailable(
            f"Label Studio at {url} did not answer as Label Studio does while {doing}: {error}"
        ) from None


def _sdk(url: str, token: str) -> LabelStudio:
    from label_studio_sdk import LabelStudio  # the SDK takes a second to import: only when used

    return LabelStudio(base_url=url, api_key=token, timeout=TIMEOUT_S)


def label_studio_server(project: Project) -> ExternalServer | None:
    return ExternalServer.objects.filter(project=project, kind=ServerKind.LABEL_STUDIO).first()


def _connected(project: Project) -> tuple[ExternalServer, LabelStudio]:
    server = label_studio_server(project)
    if server is None:
        raise LabelStudioNotReady("no Label Studio server is set for this project: enter its URL and an API token")
    try:
        token = credential_decrypt(server.secret)
    except CredentialUnreadable as error:
        raise LabelStudioNotReady(f"Label Studio's API token: {error}") from None
    with _talking(server.url, "connecting"):
        return server, _sdk(server.url, token)


@contextmanager
def _one_exchange_at_a_time(project: Project) -> Iterator[None]:
    """Hold the project's Label Studio lock (PostgreSQL advisory lock, outside any transaction) or refuse (409).

    A push lists what Label Studio holds and then adds the rest: two at once would add items twice. The state
    lives in Label Studio, so no row of ours can be updated atomically instead. SQLite (one writer, development)
    takes no lock.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_CLASS, project.pk])
        (locked,) = cursor.fetchone()
    if not locked:
        raise LabelStudioNotReady("a push or pull of this project is running: try again once it has finished")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_CLASS, project.pk])


def _mapped_task(project: Project) -> tuple[LabelTask, str]:
    task = project.task
    config = task.label_studio_config()
    if config is None:
        raise LabelStudioNotReady(f"the task {task.title!r} has no Label Studio mapping")
    return task, config


# ---------------------------------------------------------------------------------------------------- connect
def label_studio_connect(*, project: Project, url: str, token: str, by: User) -> ExternalServer:
    """Check that Label Studio answers at `url` and accepts `token`, then store both (the token encrypted).

    An empty token keeps the stored one (the page never shows it). Another URL forgets the linked Label Studio
    project: it lives on the old server.
    """
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LabelStudioInputError("url", "must be an http:// or https:// address of a Label Studio server")
    stored = label_studio_server(project)
    token = token.strip()
    if not token:
        if stored is None or not stored.secret:
            raise LabelStudioInputError("token", "is required: a Label Studio user's API token (Account & Settings)")
        try:
            token = credential_decrypt(stored.secret)
        except CredentialUnreadable as error:
            raise LabelStudioInputError("token", str(error)) from None
    email = _whoami(url, token)
    with transaction.atomic():
        server, created = ExternalServer.objects.select_for_update().get_or_create(
            project=project, kind=ServerKind.LABEL_STUDIO, defaults={"url": url, "created_by": by}
        )
        if not created and server.url != url:
            server.remote_project = None
        server.url = url
        server.username = email
        server.secret = credential_encrypt(token)
        server.save()
    log.info("project %s: Label Studio server set", project.pk)
    return server


def _whoami(url: str, token: str) -> str:
    """Return the email of the token's Label Studio user; raise LabelStudioInputError naming url or token."""
    try:
        with _talking(url, "checking the token"):
            return _sdk(url, token).users.whoami().email or ""
    except LabelStudioUnavailable as error:
        raise LabelStudioInputError("token" if error.token_refused else "url", str(error)) from None


def label_studio_disconnect(*, project: Project) -> None:
    """Forget the project's Label Studio server and its token (the Label Studio project itself stays)."""
    ExternalServer.objects.filter(project=project, kind=ServerKind.LABEL_STUDIO).delete()


# ---------------------------------------------------------------------------------------------------- push
@dataclass(frozen=True)
class PushReport:
    remote_project: int
    remote_url: str
    project_created: bool
    tasks_added: int
    tasks_present: int
    predictions_added: int
    links_renewed: int
    items_left_out: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _version_name(prediction) -> str:
    version = prediction.model_version
    return f"lumen-v{version.number}-{version.family}"


def _prediction(task: LabelTask, item: Item, prediction) -> dict[str, Any] | None:
    result = task.label_studio_prediction(prediction.output, item)
    if not result:
        return None
    made: dict[str, Any] = {"model_version": _version_name(prediction), "result": result}
    if prediction.confidence is not None:
        made["score"] = round(float(prediction.confidence), 6)
    return made


def label_studio_push(*, project: Project, base_url: str) -> PushReport:
    """Create or update the project's Label Studio project and add the items it does not hold yet, each with the
    champion's prediction; give the tasks already there the champion's prediction if they lack it, and renew their
    image links once older than LINK_RENEW_DAYS.

    Items are known in Label Studio by their `lumen_item` data field, so pushing again adds only new items. Items
    a lead excluded, or whose file waits for (or failed) the burned-in text review, are left out. One push or pull
    of a project at a time (a PostgreSQL advisory lock).
    """
    task, config = _mapped_task(project)
    server, client = _connected(project)
    shows = parse_settings(project.task_type, project.settings).show_predictions_to_annotators
    items = list(label_studio_items(project))
    left_out = Item.objects.filter(project=project).count() - len(items)
    with _one_exchange_at_a_time(project), _talking(server.url, "pushing"):
        remote, created = _remote_project(client, server, project, config, shows)
        present: dict[Any, Any] = {}
        there: Any  # the SDK's task models
        for there in client.tasks.list(project=remote, fields="all", page_size=100):
            present[there.data.get("lumen_item")] = there
        champion = champion_predictions(project)
        new = [item for item in items if item.pk not in present]
        added = predicted = renewed = 0
        held = False  # whether Label Studio holds a prediction of the champion
        for start in range(0, len(new), IMPORT_BATCH):
            batch: list[Any] = []  # task dicts, as Label Studio's import reads them
            for item in new[start : start + IMPORT_BATCH]:
                row: dict[str, Any] = {"data": task_data(task, item, base_url)}
                if item.pk in champion and (prediction := _prediction(task, item, champion[item.pk])):
                    row["predictions"] = [prediction]
                batch.append(row)
            imported = client.projects.import_tasks(remote, request=batch)
            added += imported.task_count or 0
            # Label Studio 1.23 answers `prediction_count`; the SDK's model names it `predictions_count`.
            predicted += getattr(imported, "prediction_count", None) or imported.predictions_count or 0
        for item in items:
            there = present.get(item.pk)
            if there is None:
                continue
            if item.pk in champion and (prediction := _prediction(task, item, champion[item.pk])):
                versions = {getattr(p, "model_version", None) for p in there.predictions or []}
                held = held or prediction["model_version"] in versions
                if prediction["model_version"] not in versions:
                    client.predictions.create(task=there.id, **prediction)
                    predicted += 1
            ages = [_link_age_days(there.data.get(name), base_url) for name in task.label_studio_images(item)]
            if any(age is None or age > LINK_RENEW_DAYS for age in ages):
                client.tasks.update(str(there.id), data=task_data(task, item, base_url))
                renewed += 1
        if predicted or held:
            # Label Studio pre-fills annotations from the project's model version (once it holds predictions of
            # it), when Lumen shows annotators predictions.
            version = _version_name(next(iter(champion.values())))
            client.projects.update(remote, model_version=version, show_collab_predictions=shows)
    log.info("project %s: pushed %s new items to Label Studio (%s present)", project.pk, added, len(present))
    return PushReport(
        remote_project=remote,
        remote_url=f"{server.url}/projects/{remote}/",
        project_created=created,
        tasks_added=added,
        tasks_present=len(present),
        predictions_added=predicted,
        links_renewed=renewed,
        items_left_out=left_out,
    )


def _remote_project(
    client: LabelStudio, server: ExternalServer, project: Project, config: str, shows: bool
) -> tuple[int, bool]:
    """Return the Label Studio project's id (and whether it was made now), its config brought up to date."""
    from label_studio_sdk.core.api_error import ApiError

    known = server.remote_project
    if known is not None:
        try:
            remote = client.projects.get(known)
        except ApiError as error:
            if error.status_code != 404:  # a project deleted in Label Studio is made again
                raise
        else:
            if (remote.label_config or "").strip() != config:
                client.projects.update(known, label_config=config)
            return known, False
    made = client.projects.create(
        title=f"{project.name} (Lumen)"[:50],
        description=f"Items of the Lumen project {project.slug}, pushed by Lumen; pull the annotations back there.",
        label_config=config,
        show_collab_predictions=shows,
    )
    if made.id is None:
        raise LabelStudioUnavailable(f"Label Studio at {server.url} made a project but did not say its id")
    # Recorded at once, in its own transaction: the tasks pushed next must never land in a project Lumen forgot.
    ExternalServer.objects.filter(pk=server.pk).update(remote_project=made.id)
    return made.id, True


# ---------------------------------------------------------------------------------------------------- pull / import
@dataclass(frozen=True)
class Rejected:
    task: int | None
    annotation: int | None
    item: int | None
    email: str
    reason: str


@dataclass
class LabelsReport:
    created: int = 0
    unchanged: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "unchanged": self.unchanged,
            "rejected": [asdict(r) for r in self.rejected],
        }

    def counts(self) -> str:
        return f"{self.created} created, {self.unchanged} unchanged, {len(self.rejected)} refused"


@dataclass(frozen=True)
class Incoming:
    """One annotation read from Label Studio or a file, with its item and author email resolved where they could be."""

    task: int | None
    annotation: int | None
    item: Item | None
    item_said: str  # how the task named its item, for the report when `item` is None
    email: str
    author_said: str  # how the annotation named its author, for the report when `email` is empty
    result: Any
    cancelled: bool
    lead_time: Any
    order: tuple  # newest last: (updated_at, annotation id, position in the list)

    def refused(self, reason: str) -> Rejected:
        return Rejected(self.task, self.annotation, self.item.pk if self.item else None, self.email, reason)


def label_studio_pull(*, project: Project) -> LabelsReport:
    """Read every annotation of the project's Label Studio project and store each as its author's label.

    What is stored, kept or refused: see `_labels_apply`.
    """
    task, config = _mapped_task(project)
    server, client = _connected(project)
    if server.remote_project is None:
        raise LabelStudioNotReady("nothing was pushed to Label Studio yet: push the items first")
    with _one_exchange_at_a_time(project), _talking(server.url, "pulling"):
        emails = {user.id: user.email or "" for user in client.users.list()}
        tasks: list[dict[str, Any]] = []
        there: Any  # the SDK's task models
        for there in client.tasks.list(project=server.remote_project, fields="all", only_annotated=True, page_size=100):
            tasks.append({"id": there.id, "data": there.data, "annotations": there.annotations or []})
    report = _labels_apply(project, task, config, _incoming(project, task, tasks, emails))
    log.info("project %s: pulled from Label Studio: %s", project.pk, report.counts())
    return report


def label_studio_import(*, project: Project, tasks: Any) -> LabelsReport:
    """Store the annotations of a Label Studio JSON tasks file as labels, as a pull does.

    A task names its item by `data.lumen_key` (the same images, in this project) or `data.lumen_item` (an item of
    this project). An annotation names its author by `completed_by.email`; a bare Label Studio user id (Label
    Studio's own export) is looked up on the project's Label Studio server when one is set.
    """
    task, config = _mapped_task(project)
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise LabelStudioInputError("file", "a Label Studio JSON tasks file holds a list of tasks (JSON objects)")
    emails: dict[int, str] = {}
    ids = [a.get("completed_by") for t in tasks for a in _listed(t, "annotations") if isinstance(a, dict)]
    if any(_user_id(author) is not None for author in ids) and label_studio_server(project) is not None:
        server, client = _connected(project)
        with _talking(server.url, "looking up the annotators"):
            emails = {user.id: user.email or "" for user in client.users.list()}
    report = _labels_apply(project, task, config, _incoming(project, task, tasks, emails))
    log.info("project %s: imported a Label Studio file: %s", project.pk, report.counts())
    return report


def label_studio_export(*, project: Project, base_url: str) -> list[dict[str, Any]]:
    """Return the project's items (those Label Studio may show) with their current labels and the champion's
    predictions as a Label Studio JSON tasks file; authors are named by email, as Label Studio's import reads."""
    task, _ = _mapped_task(project)
    items = list(label_studio_items(project))
    labels: dict[int, list[Label]] = {}
    for label in (
        Label.objects.current().filter(item__project=project).select_related("author").order_by("item_id", "pk")
    ):
        labels.setdefault(label.item_id, []).append(label)
    champion = champion_predictions(project)
    rows = []
    for item in items:
        row: dict[str, Any] = {"data": task_data(task, item, base_url), "annotations": [], "predictions": []}
        for label in labels.get(item.pk, []):
            made = label.created_at.isoformat()
            row["annotations"].append(
                {
                    "result": task.label_studio_result(label.payload, item),
                    "completed_by": {"email": label.author.email},
                    "was_cancelled": False,
                    "ground_truth": False,
                    "lead_time": label.time_spent_ms / 1000 if label.time_spent_ms is not None else None,
                    "created_at": made,
                    "updated_at": made,
                }
            )
        if item.pk in champion and (prediction := _prediction(task, item, champion[item.pk])):
            row["predictions"].append(prediction)
        rows.append(row)
    return rows


def _listed(row: dict, name: str) -> list:
    value = row.get(name)
    return value if isinstance(value, list) else []


def _user_id(author: Any) -> int | None:
    """Return the Label Studio user id an annotation names its author by, when it gives no email."""
    if isinstance(author, int) and not isinstance(author, bool):
        return author
    if isinstance(author, dict) and not author.get("email") and isinstance(author.get("id"), int):
        return author["id"]
    return None


def _incoming(project: Project, task: LabelTask, tasks: list[dict], emails: dict[int, str]) -> list[Incoming]:
    """Resolve each task's item (by key, then by id, among the items Label Studio may show) and each annotation's
    author email."""
    items = {item.pk: item for item in label_studio_items(project)}
    by_key = {hashed: item for item in items.values() if (hashed := item_key(task, item))}
    out: list[Incoming] = []
    for position, row in enumerate(tasks):
        raw = row.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        key, item_id = data.get("lumen_key"), data.get("lumen_item")
        item = by_key.get(key) if isinstance(key, str) and key else None
        if item is None and isinstance(item_id, int):
            item = items.get(item_id)
        task_id = row.get("id") if isinstance(row.get("id"), int) else None
        for index, annotation in enumerate(_listed(row, "annotations")):
            annotation = annotation if isinstance(annotation, dict) else {}
            author = annotation.get("completed_by")
            email, said = "", "the annotation names no author"
            if isinstance(author, dict) and isinstance(author.get("email"), str):
                email = author["email"].strip()
                said = "its author has no email"
            elif (user_id := _user_id(author)) is not None:
                email = emails.get(user_id, "")
                said = f"completed by Label Studio user {user_id}, whose email " + (
                    "is not set" if user_id in emails else "only its Label Studio server knows: set the server"
                )
            annotation_id = annotation.get("id") if isinstance(annotation.get("id"), int) else None
            out.append(
                Incoming(
                    task=task_id,
                    annotation=annotation_id,
                    item=item,
                    item_said=f"lumen_item {item_id!r}",
                    email=email,
                    author_said=said,
                    result=annotation.get("result"),
                    cancelled=bool(annotation.get("was_cancelled")),
                    lead_time=annotation.get("lead_time"),
                    order=(str(annotation.get("updated_at") or ""), annotation_id or 0, position, index),
                )
            )
    return out


def _members_by_email(project: Project) -> dict[str, list[User]]:
    members: dict[str, list[User]] = {}
    for user in User.objects.filter(memberships__project=project, is_active=True).exclude(email=""):
        members.setdefault(user.email.casefold(), []).append(user)
    return members


def _labels_apply(project: Project, task: LabelTask, config: str, incoming: list[Incoming]) -> LabelsReport:
    """Store each annotation as a new version of its author's label, unless it equals the current one.

    The author is the project member whose email is the annotation's author's (case aside). Refused, each with its
    reason: a task naming no item Label Studio may show, a skipped (cancelled) annotation, an author who is not a
    member, an older annotation of the same author and item (the newest counts, so pulling twice changes nothing),
    a result that does not fit the labeling config or the task's label schema, a label changed meanwhile in Lumen.
    """
    from label_studio_sdk.label_interface import LabelInterface

    interface = LabelInterface(config)
    members = _members_by_email(project)
    report = LabelsReport()
    newest: dict[tuple[int, int], tuple[Incoming, User]] = {}
    for one in incoming:
        if one.item is None:
            report.rejected.append(
                one.refused(f"the task names no item of this project that Label Studio may show ({one.item_said})")
            )
            continue
        if one.cancelled:
            report.rejected.append(one.refused("skipped in Label Studio: a cancelled annotation holds no label"))
            continue
        if not one.email:
            report.rejected.append(one.refused(f"no author Lumen can match: {one.author_said}"))
            continue
        found = members.get(one.email.casefold(), [])
        if len(found) != 1:
            why = "who is not a member of this project" if not found else f"an email {len(found)} members share"
            report.rejected.append(one.refused(f"completed by {one.email}, {why}"))
            continue
        mine = (one.item.pk, found[0].pk)
        if mine in newest:
            older, newer = sorted((newest[mine][0], one), key=lambda i: i.order)
            report.rejected.append(
                older.refused(f"superseded by the same author's newer annotation {newer.annotation or ''}".rstrip())
            )
            one = newer
        newest[mine] = (one, found[0])
    for one, author in sorted(newest.values(), key=lambda pair: pair[0].order):
        _label_store(task, interface, one, author, report)
    return report


def _label_store(task: LabelTask, interface, one: Incoming, author: User, report: LabelsReport) -> None:
    item = one.item
    assert item is not None  # _labels_apply refused the others
    if not isinstance(one.result, list):
        report.rejected.append(one.refused("result: must be a list of Label Studio result regions"))
        return
    errors = interface.validate_prediction({"result": one.result}, return_errors=True)
    if errors:
        report.rejected.append(one.refused(f"does not fit the project's labeling config: {errors[0]}"))
        return
    try:
        payload = task.label_studio_payload(Regions(one.result), item)
        label_payload_validate(item=item, payload=payload)
    except LabelPayloadError as error:
        report.rejected.append(one.refused(f"{error.field}: {error.message}"))
        return
    current = current_label(item, author)
    if current is not None and _same(task, item, current.payload, payload):
        report.unchanged += 1
        return
    try:
        label_submit(
            item=item,
            author=author,
            payload=payload,
            base_version=current.version if current else None,
            time_spent_ms=_milliseconds(one.lead_time),
            source=LabelSource.LABEL_STUDIO,
        )
    except LabelConflict:
        report.rejected.append(one.refused("the author's label changed in Lumen while this was read: pull again"))
        return
    report.created += 1


def _same(task: LabelTask, item: Item, stored: Any, payload: dict) -> bool:
    """Return whether a stored label says what `payload` says, read through the same mapping (a stored label may
    spell the same label otherwise, e.g. with an empty `unusable_reason`)."""
    if stored == payload:
        return True
    try:
        return task.label_studio_payload(Regions(task.label_studio_result(stored, item)), item) == payload
    except (LabelPayloadError, LookupError, TypeError, ValueError):
        return False


def _milliseconds(lead_time: Any) -> int | None:
    """Return Label Studio's lead time (seconds) as the label's time spent, when it is a sensible number."""
    if isinstance(lead_time, bool) or not isinstance(lead_time, (int, float)) or not 0 <= lead_time < 2**31 / 1000:
        return None
    return round(lead_time * 1000)
