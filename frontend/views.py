"""Server-rendered pages; data beyond the first paint comes from the API through ES modules."""

import json

from django.conf import settings as django_settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from annotation import selectors
from annotation.api.permissions import project_for
from annotation.api.views import first_frame_inline, first_images, next_answer
from annotation.models import ModelStatus, Role
from annotation.project_settings import ProjectSettings, parse_settings
from annotation.services.lifecycle import TRANSITIONS
from annotation.tasks import label_task, task_choices
from frontend.inline_styles import inline_styles
from frontend.markdown import instructions_html
from learning.strategies import STRATEGIES


@login_required
def home(request: HttpRequest) -> HttpResponse:
    projects = list(selectors.projects_for(request.user))
    for project in projects:
        project.progress = selectors.work_progress(project, request.user)
    can_create = request.user.has_perm("annotation.add_project")
    return render(
        request,
        "frontend/home.html",
        {"projects": projects, "task_choices": task_choices() if can_create else None},
    )


@login_required
def project_detail(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for(request, slug)
    is_lead = selectors.project_role(project, request.user) == Role.LEAD
    items = selectors.items_for(request.user).filter(project=project).order_by("id")[:200]
    settings = parse_settings(project.task_type, project.settings)
    return render(
        request,
        "frontend/project.html",
        {
            "project": project,
            "is_lead": is_lead,
            "items": items,
            "item_total": project.items.count(),
            "settings": settings,
            "learning": _learning_choices(project.task_type, settings) if is_lead else None,
            "upload_limits": _upload_limits() if is_lead else None,
        },
    )


def _upload_limits() -> dict:
    """Return what one upload may hold, for the import card to refuse a larger choice before sending it.

    Each file travels with its path as a form field, so Django's field limit bounds the files as well.
    """
    fields = django_settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    files = django_settings.DATA_UPLOAD_MAX_NUMBER_FILES
    return {"bytes": django_settings.LUMEN_MAX_UPLOAD_BYTES, "files": files if fields is None else min(files, fields)}


def _learning_choices(task_type: str, settings: ProjectSettings) -> dict:
    """Return what the lead's active-learning card offers: the strategies, the task's primary test metric,
    and for a classification task the classes the model learns."""
    spec = label_task(task_type).learning()
    chosen = getattr(spec.params_class.parse(settings.training_hparams), "class_names", ())
    return {
        "strategies": [
            (name, (strategy.__doc__ or "").strip().splitlines()[0].replace("``", ""))
            for name, strategy in STRATEGIES.items()
        ],
        "primary_metric": spec.primary_metric,
        "classes": [(name, name in chosen) for name in spec.classes],
        "training_hparams_json": json.dumps(settings.training_hparams),
        "model_states": [(state.value, state.label, sorted(TRANSITIONS[state])) for state in ModelStatus],
    }


@never_cache  # the page carries the user's lease of the item it hands out
@login_required
def workspace(request: HttpRequest, slug: str) -> HttpResponse:
    """The labeling workspace: one item after another, the task's tool mounted by workspace.js.

    Opened without `?item=`, the page leases the first item itself (as `POST …/next/` would: an open lease is
    resumed, so reloading takes no other item) and embeds the answer, and its head preloads the item's first
    image: the browser asks for nothing else before that image. A cine run's frame 0 is in the page as an
    <img>, on screen as soon as its bytes arrive (they are in the page itself where the frame is small: see
    `first_frame_inline`); the player takes that image over when its module has loaded.
    """
    project = project_for(request, slug)
    first = None if "item" in request.GET else next_answer(request, project)
    # The page's CSS is in the page: its first image is painted without waiting for a stylesheet's response.
    styles = inline_styles("frontend/lumen.css", "frontend/workspace.css", project.task.tool_style)
    # So is a cine run's frame 0 where it is small: nothing is requested before it is on screen.
    frame = first_frame_inline(request, first) if first else None
    in_page = frame is not None and frame["bytes"] is not None
    response = render(
        request,
        "frontend/workspace.html",
        {
            "project": project,
            "styles": styles.css,
            "is_lead": project.viewer_role == Role.LEAD,
            "first_next": first,
            "first_images": first_images(first, frame_in_page=in_page) if first else [],
            "first_frame": frame,
            "instructions": instructions_html(project.instructions) if project.instructions.strip() else "",
        },
    )
    return styles.allow(response)
