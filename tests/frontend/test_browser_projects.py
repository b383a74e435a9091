"""A lead creates a project and manages its members in the browser, without the API by hand."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from annotation.models import Membership, Project, Role
from tests.frontend.test_browser_import import log_in

pytestmark = pytest.mark.django_db(transaction=True)


def allow_creating_projects(user) -> None:
    user.user_permissions.add(Permission.objects.get(codename="add_project", content_type__app_label="annotation"))


def test_only_users_allowed_to_create_projects_see_the_form(client, lead, annotator):
    client.force_login(annotator)
    assert 'id="new-project"' not in client.get("/").content.decode()
    allow_creating_projects(lead)
    client.force_login(lead)
    page = client.get("/").content.decode()
    assert 'id="new-project"' in page and 'value="oct_calcium"' in page  # every registered task is offered


@pytest.mark.browser
def test_a_lead_creates_a_project_then_adds_changes_and_removes_members(page, live_server, lead, annotator, screenshot):
    allow_creating_projects(lead)
    log_in(page, live_server, lead.username)
    page.wait_for_selector("#new-project-form")
    page.fill("#new-project-form input[name=name]", "Calcium study")
    page.fill("#new-project-form input[name=slug]", "calcium-study")
    page.select_option("#new-project-form select[name=task_type]", "oct_calcium")
    page.fill("#new-project-form textarea[name=instructions]", "Brush **every** arc of calcium.")
    page.click("#new-project-form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/projects/calcium-study/")
    project = Project.objects.get(slug="calcium-study")
    assert (project.task_type, project.instructions) == ("oct_calcium", "Brush **every** arc of calcium.")
    page.wait_for_selector("#member-table tr[data-username='lead-user']")

    page.fill("#member-form input[name=username]", annotator.username)
    page.click("#member-form button[type=submit]")
    page.wait_for_selector("#member-table tr[data-username='annotator-user']")
    assert Membership.objects.get(project=project, user=annotator).role == Role.ANNOTATOR
    page.fill("#member-form input[name=username]", annotator.username)
    page.select_option("#member-form select[name=role]", "lead")
    page.click("#member-form button[type=submit]")
    page.wait_for_selector("#member-table tr[data-username='annotator-user'] td.role:text('lead')")
    screenshot("project-members")

    page.fill("#member-form input[name=username]", "nobody-here")
    page.click("#member-form button[type=submit]")
    page.wait_for_function("document.getElementById('member-status').textContent.includes('no active user')")

    page.click("#member-table tr[data-username='annotator-user'] button.remove")
    page.wait_for_selector("#member-table tr[data-username='annotator-user']", state="detached")
    assert not Membership.objects.filter(project=project, user=annotator).exists()
    page.click("#member-table tr[data-username='lead-user'] button.remove")  # the last lead
    page.wait_for_function("document.getElementById('member-status').textContent.startsWith('Not removed')")
    assert Membership.objects.filter(project=project, user=lead, role=Role.LEAD).exists()


@pytest.mark.browser
def test_a_taken_short_name_is_refused_with_the_reason(page, live_server, lead, vessel_project):
    allow_creating_projects(lead)
    log_in(page, live_server, lead.username)
    page.fill("#new-project-form input[name=name]", "Again")
    page.fill("#new-project-form input[name=slug]", vessel_project.slug)
    page.click("#new-project-form button[type=submit]")
    page.wait_for_function("document.getElementById('new-project-status').textContent.includes('already exists')")
    assert Project.objects.filter(slug=vessel_project.slug).count() == 1
