"""The workspace shell in a real browser: start, drafts that survive a reload and a lost connection, skip,
back to the previous item, conflicts, and the end of the queue."""

from __future__ import annotations

import pytest

from annotation.models import Assignment, AssignmentState, Draft, Label
from annotation.services import label_submit
from tests import dicom_samples as samples
from tests.annotation.test_ingest import run
from tests.frontend.test_browser_import import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def runs(vessel_project):
    run(vessel_project, *[(f"run{i}.dcm", samples.xa_bytes(seed=40 + i, frames=6, size=48)) for i in range(3)])
    return list(vessel_project.items.order_by("id"))


def ready(page, item_id: int | None = None) -> None:
    selector = "#workspace[data-state=ready]" + (f"[data-item-id='{item_id}']" if item_id else "")
    page.wait_for_selector(selector)


def pressed(page) -> list[str]:
    return page.locator(".vessel-option[aria-pressed=true]").evaluate_all("els => els.map(e => e.dataset.vessel)")


def test_start_from_home_and_a_draft_survives_a_reload(page, live_server, annotator, vessel_project, runs, screenshot):
    log_in(page, live_server, annotator.username)
    row = page.locator(f"#projects tr[data-slug='{vessel_project.slug}']")
    assert row.locator("[data-count=to_do]").inner_text() == "3"
    row.locator("a.start").click()
    ready(page, runs[0].pk)
    assert page.locator("#progress [data-count=to_do]").inner_text() == "3"
    assert "Submit" in page.locator("#shortcuts").inner_text()  # shell and tool shortcuts are on screen
    page.keyboard.press("2")
    page.wait_for_function("document.getElementById('draft-state').textContent === 'saved'")
    assert Draft.objects.get(item=runs[0], author=annotator).payload["vessel"] == "RCA"
    page.reload()
    ready(page, runs[0].pk)
    assert pressed(page) == ["RCA"]
    assert "draft was restored" in page.locator("#status").inner_text()
    screenshot("workspace-draft-restored")


def test_skip_submit_back_and_the_end_of_the_queue(page, live_server, annotator, vessel_project, runs):
    log_in(page, live_server, annotator.username)
    page.goto(f"{live_server.url}/projects/{vessel_project.slug}/label/")
    ready(page, runs[0].pk)
    page.keyboard.press("Shift+S")
    page.wait_for_selector("#skip-dialog[open]")
    page.keyboard.press("Enter")  # an empty reason is refused by the form
    assert page.locator("#skip-dialog[open]").count() == 1
    page.fill("#skip-reason", "catheter only")
    page.keyboard.press("Enter")
    ready(page, runs[1].pk)
    skipped = Assignment.objects.get(item=runs[0], annotator=annotator)
    assert skipped.state == AssignmentState.SKIPPED and skipped.skip_reason == "catheter only"

    page.keyboard.press("1")
    page.keyboard.press("Enter")
    ready(page, runs[2].pk)
    assert Label.objects.get(item=runs[1], author=annotator).payload["vessel"] == "LCA"
    page.keyboard.press("Shift+B")
    ready(page, runs[1].pk)
    assert pressed(page) == ["LCA"]
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    # Back to the item still leased, then the queue runs out.
    ready(page, runs[2].pk)
    versions = list(
        Label.objects.filter(item=runs[1], author=annotator).order_by("version").values_list("version", flat=True)
    )
    assert versions == [1, 2]
    assert Label.objects.get(item=runs[1], author=annotator, superseded_at__isnull=True).payload["vessel"] == "neither"
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    page.wait_for_selector("#workspace[data-state=done]")
    assert "Nothing left" in page.locator("#done").inner_text()
    assert page.locator("#progress [data-count=done]").inner_text() == "2"
    assert page.locator("#progress [data-count=skipped]").inner_text() == "1"


def test_a_lost_connection_keeps_the_work_and_submits_later(page, live_server, annotator, vessel_project, runs):
    log_in(page, live_server, annotator.username)
    page.goto(f"{live_server.url}/projects/{vessel_project.slug}/label/")
    ready(page, runs[0].pk)
    page.context.set_offline(True)
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('status').textContent.includes('Could not reach the server')")
    assert not Label.objects.exists()
    local = page.evaluate(f"localStorage.getItem('lumen-draft:{annotator.username}:{runs[0].pk}')")
    assert '"vessel":"RCA"' in local
    page.context.set_offline(False)
    page.keyboard.press("Enter")
    ready(page, runs[1].pk)
    label = Label.objects.get(item=runs[0], author=annotator)
    assert label.payload["vessel"] == "RCA" and label.time_spent_ms > 0
    assert page.evaluate(f"localStorage.getItem('lumen-draft:{annotator.username}:{runs[0].pk}')") is None


def test_an_edit_made_elsewhere_is_a_conflict_not_an_overwrite(page, live_server, annotator, vessel_project, runs):
    log_in(page, live_server, annotator.username)
    page.goto(f"{live_server.url}/projects/{vessel_project.slug}/label/")
    ready(page, runs[0].pk)
    # The same annotator labels the item in another tab meanwhile.
    label_submit(item=runs[0], author=annotator, payload={"vessel": "neither"}, base_version=None)
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    page.wait_for_selector("#conflict:not([hidden])")
    assert "version 1" in page.locator("#conflict").inner_text()
    assert Label.objects.filter(item=runs[0]).count() == 1
    page.click("#conflict-load")
    page.wait_for_selector("#conflict[hidden]", state="attached")
    ready(page, runs[0].pk)
    assert pressed(page) == ["neither"]
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    ready(page, runs[1].pk)
    assert Label.objects.get(item=runs[0], superseded_at__isnull=True).version == 2


def test_a_lead_turns_predictions_on_for_annotators(page, live_server, lead, vessel_project):
    from annotation.project_settings import parse_settings

    log_in(page, live_server, lead.username)
    page.goto(f"{live_server.url}/projects/{vessel_project.slug}/")
    checkbox = page.locator("#settings-form input[name=show_predictions_to_annotators]")
    assert not checkbox.is_checked()  # hidden by default for vessel type, against anchoring
    checkbox.check()
    page.fill("#settings-form input[name=lease_minutes]", "45")
    page.fill("#settings-form input[name=training_workers]", "2")
    page.click("#settings-form button[type=submit]")
    page.wait_for_function("document.getElementById('settings-status').textContent === 'Saved.'")
    vessel_project.refresh_from_db()
    config = parse_settings(vessel_project.task_type, vessel_project.settings)
    assert config.show_predictions_to_annotators and config.lease_minutes == 45 and config.training_workers == 2
    # A bad value is refused with the field named, and nothing is saved.
    page.fill("#settings-form input[name=training_workers]", "99")
    page.evaluate("document.querySelector('#settings-form input[name=training_workers]').removeAttribute('max')")
    page.click("#settings-form button[type=submit]")
    page.wait_for_function("document.getElementById('settings-status').textContent.startsWith('Not saved')")
    assert "training_workers" in page.text_content("#settings-status")
    vessel_project.refresh_from_db()
    assert parse_settings(vessel_project.task_type, vessel_project.settings).training_workers == 2


def test_a_label_sent_back_for_review_shows_the_leads_note_and_a_new_version_answers_it(
    page, live_server, annotator, lead, vessel_project, runs, screenshot
):
    from annotation.models import ReviewItem
    from annotation.services.adjudication import review_request_create

    for item in runs:
        label_submit(item=item, author=annotator, payload={"vessel": "LCA"}, base_version=None)
    review_request_create(
        project=vessel_project, annotator=annotator, requested_by=lead, limit=1, note="check the LAO views"
    )
    sent_back = ReviewItem.objects.get().item_id
    log_in(page, live_server, annotator.username)
    page.goto(f"{live_server.url}/projects/{vessel_project.slug}/label/")
    ready(page, sent_back)
    banner = page.locator("#review")
    assert banner.is_visible() and "lead-user: “check the LAO views”" in banner.inner_text()
    assert page.locator("#progress [data-count=to_review]").inner_text() == "1"
    assert pressed(page) == ["LCA"]  # their own label, to keep or change
    screenshot("workspace-review")
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    page.wait_for_selector("#workspace[data-state=done]")
    current = Label.objects.get(item_id=sent_back, author=annotator, superseded_at__isnull=True)
    assert (current.version, current.payload["vessel"]) == (2, "RCA")
    assert ReviewItem.objects.get().resolved_label == current


def test_the_following_item_is_leased_ahead_and_shown_on_submit(page, live_server, annotator, vessel_project, runs):
    requests: list[str] = []
    page.on("request", lambda request: requests.append(f"{request.method} {request.url}"))
    log_in(page, live_server, annotator.username)
    page.goto(f"{live_server.url}/projects/{vessel_project.slug}/label/")
    ready(page, runs[0].pk)
    # The page came with the first item (leased as it was rendered) and its first frame, which the player then
    # took: no `next` was asked for it, and frame 0 was not asked for at all.
    assert not [r for r in requests if r.endswith("/next/")], requests
    assert not [r for r in requests if r.endswith(f"/api/items/{runs[0].pk}/frames/0/")], requests
    page.wait_for_function(
        f"performance.getEntriesByType('resource').some(e => e.name.endsWith('/next/?after={runs[0].pk}'))"
    )

    def leased() -> set[int]:
        return set(
            Assignment.objects.filter(annotator=annotator, state=AssignmentState.LEASED).values_list(
                "item_id", flat=True
            )
        )

    for _ in range(50):
        if len(leased()) == 2:
            break
        page.wait_for_timeout(100)
    assert leased() == {runs[0].pk, runs[1].pk}  # the current item and the one after it
    # Its first frame is warmed once the lease's answer is in (a moment after the lease is written).
    for _ in range(50):
        if any(r.endswith(f"/api/items/{runs[1].pk}/frames/0/") for r in requests):
            break
        page.wait_for_timeout(100)
    assert any(r.endswith(f"/api/items/{runs[1].pk}/frames/0/") for r in requests)
    requests.clear()
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    ready(page, runs[1].pk)  # shown from what was fetched ahead: no plain `next` was asked for
    assert not [r for r in requests if r.endswith("/next/")], requests
    assert Label.objects.get(item=runs[0], author=annotator).payload["vessel"] == "LCA"
    page.wait_for_function("document.querySelector('#progress [data-count=done]').textContent.trim() === '1'")
