"""Run inside Label Studio's own virtualenv and Django (not Lumen's): load one project for the HTTP load benchmark.

    <label-studio venv>/bin/python benchmarks/label_studio_setup.py '{"size": 10000, "clients": 32, ...}'

Creates (once) an organization with legacy API tokens switched on (Label Studio 1.23 ships them off; the
benchmark's clients send `Authorization: Token …` as Lumen's do), `clients` annotator accounts with a token each,
and a project with a three-choice vessel-type config; then bulk-creates `size` tasks (an image URL each, one in
`overlap_every` needing two annotations, as the Lumen project has). Prints one JSON line: project id and tokens.
Label Studio's own defaults are kept for everything else (sequential sampling, task locks on).
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
    from rest_framework.authtoken.models import Token
    from tasks.models import Task
    from users.models import User

    size, clients, every = int(options["size"]), int(options["clients"]), int(options["overlap_every"])
    with transaction.atomic():
        owner, _ = User.objects.get_or_create(email="bench-lead@example.org", defaults={"username": "bench-lead"})
        organization = Organization.objects.filter(created_by=owner).first()
        if organization is None:
            organization = Organization.create_organization(
                created_by=owner, title="Benchmark", legacy_api_tokens_enabled=True
            )
        jwt = organization.jwt
        jwt.legacy_api_tokens_enabled = True
        jwt.save()
        tokens = []
        for i in range(clients):
            user, _ = User.objects.get_or_create(
                email=f"bench-annotator-{i}@example.org", defaults={"username": f"bench-annotator-{i}"}
            )
            organization.add_user(user)
            if user.active_organization_id != organization.pk:
                user.active_organization = organization
                user.save(update_fields=["active_organization"])
            tokens.append(Token.objects.get_or_create(user=user)[0].key)
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
    print(json.dumps({"project": project.pk, "tokens": tokens}))


if __name__ == "__main__":
    main()
