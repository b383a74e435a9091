"""Each task's browser views live in its own module (LabelTask.views_script), handed to the pages by URL: the shared
browser code keeps no registry keyed by task type, and every registered task names a module that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.templatetags.static import static
from django.urls import reverse

from annotation.tasks import label_tasks

FRONTEND = Path(__file__).resolve().parents[2] / "frontend" / "static" / "frontend"
TASK_TYPES = ("vessel_type", "oct_calcium", "spect_territory")
_NAME = "|".join(TASK_TYPES)
# A task type as a whole string literal ("oct_calcium" compared, a quoted key, TASKS["x"], case 'x':), as a bare
# object key (vessel_type: …) or as a property (TASKS.spect_territory). A module path such as
# "./tools/vessel_type.js" is none of these: the name there is part of a longer string.
KEYED = re.compile(
    rf"""(["'`])(?:{_NAME})\1"""  # a string literal of just the name
    rf"""|(?<![\w$./-])(?:{_NAME})\s*:"""  # an object key
    rf"""|[\w$\])]\.(?:{_NAME})\b(?!\.)"""  # a property
)


def shared_modules() -> list[Path]:
    """Return the browser modules outside tasks/ (the one place a task's own views live)."""
    return sorted(p for p in FRONTEND.rglob("*.js") if "tasks" not in p.relative_to(FRONTEND).parts[:-1])


@pytest.mark.parametrize(
    "line",
    [
        "const TASKS = { vessel_type: vessel, oct_calcium: oct, spect_territory: spect };",
        'if (root.dataset.taskType === "oct_calcium") draw();',
        "const view = TASKS['spect_territory'];",
        "case `vessel_type`:",
        "const view = VIEWS.oct_calcium;",
        '{ "spect_territory": spect }',
    ],
)
def test_the_check_finds_a_registry_keyed_by_task_type(line):
    assert KEYED.search(line)


@pytest.mark.parametrize(
    "line",
    [
        'import { mountTool } from "./tools/vessel_type.js";',
        'const views = await import("../tasks/oct_calcium.js");',
        "// the spect_territory.css stylesheet",
        'const url = "/static/frontend/tools/spect_territory.js";',
    ],
)
def test_the_check_leaves_module_paths_alone(line):
    assert not KEYED.search(line)


def test_shared_browser_code_keeps_no_registry_keyed_by_task_type():
    modules = shared_modules()
    assert FRONTEND / "quality.js" in modules and FRONTEND / "adjudicate-views.js" in modules
    found = [
        f"{path.relative_to(FRONTEND)}:{number}: {line.strip()}"
        for path in modules
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if KEYED.search(line)
    ]
    assert found == [], "task types belong to the task's module (LabelTask.views_script), not to shared code"


@pytest.mark.parametrize("name", sorted(label_tasks()))
def test_every_task_names_a_views_module_with_its_agreement_and_adjudication_views(name):
    task = label_tasks()[name]
    assert task.views_script.startswith("frontend/tasks/"), task.views_script
    found = finders.find(task.views_script)
    assert found, f"{task.views_script} is not a static file"
    source = Path(found).read_text()
    for view in ("agreement", "adjudication"):
        assert re.search(rf"^export const {view}\b", source, re.MULTILINE), f"{task.views_script} exports no {view}"


@pytest.mark.django_db
@pytest.mark.parametrize("fixture", ["vessel_project", "oct_project", "spect_project"])
def test_the_dashboard_hands_the_task_views_over_by_url(client, lead, fixture, request):
    project = request.getfixturevalue(fixture)
    client.force_login(lead)
    page = client.get(reverse("quality", args=[project.slug])).content.decode()
    url = static(project.task.views_script)
    assert f'data-views-url="{url}"' in page
    assert f'<link rel="modulepreload" href="{url}">' in page
    assert "data-task-type" not in page
