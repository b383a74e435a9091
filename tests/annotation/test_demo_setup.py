"""`manage.py demo_setup`: demo accounts and three demo projects with generated items, idempotent."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import RequestFactory

from annotation.models import ItemKind, Project, SpectExam, Split
from annotation.selectors import projects_for
from annotation.services.splits import splits_fill

pytestmark = pytest.mark.django_db


def test_demo_setup_creates_accounts_and_three_filled_projects(tmp_path, capsys):
    call_command("demo_setup", "--data-dir", str(tmp_path / "data"), "--password", "demo-pass-1")
    out = capsys.readouterr().out
    assert "password: demo-pass-1" in out
    login = RequestFactory().post("/login/")  # django-axes checks every password login against its request
    lead = authenticate(login, username="lead", password="demo-pass-1")
    assert lead is not None and authenticate(login, username="annotator1", password="demo-pass-1") is not None
    assert lead.has_perm("annotation.add_project")
    projects = {p.slug: p for p in projects_for(lead)}
    assert set(projects) == {"demo-vessel", "demo-oct", "demo-spect"}
    assert all(p.item_count > 0 for p in projects.values())
    vessel = Project.objects.get(slug="demo-vessel")
    assert vessel.items.filter(kind=ItemKind.CINE_RUN, instance__positioner_primary_angle__isnull=False).exists()
    assert SpectExam.objects.filter(item__project__slug="demo-spect", age__isnull=False).exists()
    counts = {slug: p.item_count for slug, p in projects.items()}
    # Every demo project holds patients out for testing once its splits are drawn (the first ranking or
    # training draws them), so its first model can be judged before anyone sees it.
    for project in Project.objects.all():
        splits_fill(project=project)
        assert project.items.filter(split=Split.TEST).exists(), project.slug
        assert project.items.exclude(split=Split.TEST).exists(), project.slug

    call_command("demo_setup", "--data-dir", str(tmp_path / "data"), "--password", "demo-pass-1")
    assert "already there" in capsys.readouterr().out
    assert {p.slug: p.item_count for p in projects_for(lead)} == counts
