"""Run inside Label Studio's own virtualenv and Django (not Lumen's): load one project for the HTTP load benchmark.

    <label-studio venv>/bin/python -P benchmarks/label_studio_setup.py '{"owner": "…", "size": 10000, ...}'

The accounts (the owner's organization, with legacy API tokens switched on, and the annotators with their tokens)
are made first by benchmarks/label_studio_accounts.py. This creates a project of the owner's organization with a
three-choice vessel-type config, then bulk-creates `size` tasks (an image URL each, one in `overlap_every` needing
two annotations, as the Lumen project has). Prints one JSON line: the project id. Label Studio's own defaults are
kept for everything else (sequential sampling, task locks on).
"""

from __future__ import annotations

import json
import os
import sys

LABEL_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <Choices name="vessel" toName="image" choice="single">
    <Choice value="LCA"/><Choice value="RCA"/><Choice value="neither"/>
  </Choices>
</View>"""


def main() -> None:
    options = json.loads(sys.argv[1])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings.label_studio")
    import django

    django.setup()
    from django.db import connection, transaction
    from organizations.models import Organization
    from projects.models import Project
    from tasks.models import Task
    from users.models import User

    size, every = int(options["size"]), int(options["overlap_every"])
    with transaction.atomic():
        owner = User.objects.get(email=options["owner"])
        organization = Organization.objects.get(created_by=owner)
        project = Project.objects.create(
            title=f"HTTP load {size}",
            label_config=LABEL_CONFIG,
            organization=organization,
            created_by=owner,
            maximum_annotations=1,
        )
    batch = 20_000
    for start in range(0, size, batch):
        Task.objects.bulk_create(
            [
                Task(
                    project=project,
                    data={"image": f"/data/frames/{i}.png"},
                    overlap=2 if (i + 1) % every == 0 else 1,
                    inner_id=i + 1,
                )
                for i in range(start, min(size, start + batch))
            ]
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE task")
        cursor.execute("ANALYZE task_completion")
    print(json.dumps({"project": project.pk}))


if __name__ == "__main__":
    main()
