"""Data migrations run on a database with rows in it (a scratch SQLite file in a process of its own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, os
import django
django.setup()
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

call_command("migrate", "annotation", "0006", verbosity=0)
apps = MigrationExecutor(connection).loader.project_state(("annotation", "0006_assignment_kind")).apps
User, Project = apps.get_model("auth", "User"), apps.get_model("annotation", "Project")
Patient, Item = apps.get_model("annotation", "Patient"), apps.get_model("annotation", "Item")
Label, Queue = apps.get_model("annotation", "Label"), apps.get_model("annotation", "ProjectQueue")
first, second = User.objects.create(username="a"), User.objects.create(username="b")
project = Project.objects.create(slug="p", name="p", task_type="vessel_type", settings={})
patient = Patient.objects.create(pseudonym="X", identity_hash="h")
items = [Item.objects.create(project=project, kind="cine_run", patient=patient, title=str(i),
                             required_labels=2 if i == 0 else 1) for i in range(4)]
Label.objects.create(item=items[0], author=first, version=1, payload={"vessel": "LCA"})
old = Label.objects.create(item=items[1], author=first, version=1, payload={"vessel": "LCA"})
Label.objects.filter(pk=old.pk).update(superseded_at="2026-01-01T00:00:00Z")
Label.objects.create(item=items[1], author=first, version=2, previous=old, payload={"vessel": "RCA"})
Label.objects.create(item=items[2], author=first, version=1, payload={"vessel": "LCA"})
Label.objects.create(item=items[2], author=second, version=1, payload={"vessel": "LCA"})
Queue.objects.create(project=project)
call_command("migrate", "annotation", verbosity=0)
from annotation.models import Item as Now, ProjectQueue as NowQueue
print(json.dumps({"labellers": dict(Now.objects.values_list("title", "labellers")),
                  "wanting": NowQueue.objects.get().wanting_items}))
"""


def migrated(tmp_path, script: str) -> dict:
    """Run a migration script against a scratch SQLite file in a process of its own; return the JSON it printed."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'old.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "webapp.settings.base",
        "LUMEN_MEDIA_ROOT": str(tmp_path / "media"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_work_tallies_migration_counts_labellers_and_wanting_items(tmp_path):
    result = migrated(tmp_path, SCRIPT)
    # Item 0 needs two labels and has one; item 1 has two versions of one author's label; item 2 two authors.
    assert result["labellers"] == {"0": 1, "1": 1, "2": 2, "3": 0}
    assert result["wanting"] == 2  # items 0 and 3


LIFECYCLE_SCRIPT = """
import json
import django
django.setup()
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

call_command("migrate", "annotation", "0010", verbosity=0)
apps = MigrationExecutor(connection).loader.project_state(("annotation", "0010_deid_burned_in_two_frame_spect")).apps
User, Project = apps.get_model("auth", "User"), apps.get_model("annotation", "Project")
Patient, Item = apps.get_model("annotation", "Patient"), apps.get_model("annotation", "Item")
Version = apps.get_model("annotation", "ModelVersion")
project = Project.objects.create(slug="p", name="p", task_type="vessel_type", settings={})
patient = Patient.objects.create(pseudonym="X", identity_hash="h")
Item.objects.create(project=project, kind="cine_run", patient=patient, title="drifted", labellers=1, open_slots=1)
Item.objects.create(project=project, kind="cine_run", patient=patient, title="open", required_labels=2, labellers=1)
Version.objects.create(project=project, number=1, family="f", status="retired")
Version.objects.create(project=project, number=2, family="f", status="champion",
                       metrics={"test": {"n": 3}, "promotion": {"wins": True, "rule": "beat v1", "against": 1}})
Version.objects.create(project=project, number=3, family="f", status="failed")
call_command("migrate", "annotation", verbosity=0)
from annotation.models import Item as NowItem, ModelVersion as NowVersion
versions = {v.number: [v.status, v.decision_rule, v.compared_with.number if v.compared_with else None, v.metrics]
            for v in NowVersion.objects.all()}
print(json.dumps({"slots": dict(NowItem.objects.values_list("title", "open_slots")), "versions": versions}))
"""


def test_the_slot_constraint_and_lifecycle_columns_migrate_existing_rows(tmp_path):
    result = migrated(tmp_path, LIFECYCLE_SCRIPT)
    assert result["slots"] == {"drifted": 0, "open": 1}  # the labelled single-label item had a slot it cannot have
    assert result["versions"] == {
        "1": ["retired", "", None, {}],
        "2": ["champion", "beat v1", 1, {"test": {"n": 3}}],
        "3": ["rejected", "", None, {}],
    }
