"""Run inside Label Studio's own virtualenv and Django (not Lumen's): make accounts and their API tokens.

    <label-studio venv>/bin/python -P benchmarks/label_studio_accounts.py '{"emails": ["owner@example.org", ...]}'

The first email owns one organization (made once, with legacy API tokens switched on: Label Studio 1.23 ships them
off, and the HTTP benchmark's clients send `Authorization: Token …` as Lumen's own do); every email becomes a
member of it, with the user name its email. Prints one JSON line: per email its user id, its legacy token and a
personal access token (the JWT refresh token Label Studio's "Access Token" page hands out by default).
"""

from __future__ import annotations

import json
import os
import sys


def accounts_ensure(emails: list[str]) -> dict[str, dict]:
    """Create (or find) the users of `emails` in the first one's organization; return their ids and tokens."""
    from django.db import transaction
    from jwt_auth.models import LSAPIToken
    from organizations.models import Organization
    from rest_framework.authtoken.models import Token
    from users.models import User

    accounts: dict[str, dict] = {}
    with transaction.atomic():
        owner, _ = User.objects.get_or_create(email=emails[0], defaults={"username": emails[0]})
        organization = Organization.objects.filter(created_by=owner).first()
        if organization is None:
            organization = Organization.create_organization(
                created_by=owner, title="Lumen", legacy_api_tokens_enabled=True
            )
        jwt = organization.jwt
        jwt.legacy_api_tokens_enabled = True
        jwt.save()
        for email in emails:
            user, _ = User.objects.get_or_create(email=email, defaults={"username": email})
            organization.add_user(user)
            if user.active_organization_id != organization.pk:
                user.active_organization = organization
                user.save(update_fields=["active_organization"])
            accounts[email] = {
                "id": user.pk,
                "legacy": Token.objects.get_or_create(user=user)[0].key,
                "personal": LSAPIToken.for_user(user).get_full_jwt(),
            }
    return accounts


def main() -> None:
    options = json.loads(sys.argv[1])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings.label_studio")
    import django

    django.setup()
    print(json.dumps(accounts_ensure(list(options["emails"]))))


if __name__ == "__main__":
    main()
