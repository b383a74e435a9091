"""In a real browser: the lead's item browser filters and sorts the project's items, opens one in its tool, and
excludes and includes items in bulk, saying what happened. Annotators get the leads-only page; the page runs under
the site's content security policy."""

from __future__ import annotations

import pytest

from annotation.models import Item, ModelStatus, ModelVersion, Prediction
from annotation.services import item_skip, label_submit, project_update
from tests import dicom_samples as samples
from tests.annotation.test_ingest import run
from tests.frontend.test_browser_csp import _violations, policed_page
from tests.frontend.test_browser_import import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

READY = "#item-browser[data-state='ready']"


@pytest.fixture
def runs(vessel_project, lead, annotator, second_annotator):
    """Six runs: 0 and 1 train, labelled LCA and RCA; 2 test, disputed (LCA vs RCA); 3 skipped; 4 and 5 untouched.
    A champion scored them all, 5 the most uncertain."""
    project_update(project=vessel_project, settings={"overlap_rate": 0.0})
    run(vessel_project, *[(f"run{i}.dcm", samples.xa_bytes(seed=80 + i, frames=3, size=32)) for i in range(6)])
    items = list(vessel_project.items.order_by("pk"))
    for item, split in zip(items, ["train", "train", "test", "validation", "train", "train"], strict=True):
        Item.objects.filter(pk=item.pk).update(split=split)
    for item, author, vessel in [
        (items[0], annotator, "LCA"),
        (items[1], annotator, "RCA"),
        (items[2], annotator, "LCA"),
        (items[2], second_annotator, "RCA"),
    ]:
        label_submit(item=item, author=author, payload={"vessel": vessel}, base_version=None)
    item_skip(item=items[3], annotator=annotator, reason="too dark")
    champion = ModelVersion.objects.create(
        project=vessel_project, number=1, family="contrast_logreg", status=ModelStatus.CHAMPION
    )
    uncertainties = [0.2, 0.5, 0.3, 0.1, 0.4, 0.9]
    for item, uncertainty in zip(items, uncertainties, strict=True):
        Prediction.objects.create(
            item=item,
            model_version=champion,
            output={"vessel": "RCA" if uncertainty > 0.35 else "LCA", "probabilities": {"LCA": 0.5, "RCA": 0.5}},
            uncertainty=uncertainty,
            confidence=0.5,
        )
    return items


def shown(page) -> list[int]:
    return [int(v) for v in page.eval_on_selector_all("#item-table tbody tr", "rows => rows.map(r => r.dataset.item)")]


def settle(page) -> None:
    """Wait for the table to show the answer to the last change (a change marks the page loading at once)."""
    page.wait_for_selector(READY)


def open_browser(page, live_server, project) -> None:
    page.goto(f"{live_server.url}/projects/{project.slug}/")
    page.click("#items-link")
    page.wait_for_url(f"{live_server.url}/projects/{project.slug}/items/**")
    settle(page)


def test_a_lead_filters_sorts_and_opens_an_item_in_its_tool(page, live_server, runs, vessel_project, lead, screenshot):
    ids = [item.pk for item in runs]
    log_in(page, live_server, lead.username)
    page.wait_for_selector("#projects")
    open_browser(page, live_server, vessel_project)
    assert shown(page) == ids
    assert page.inner_text("#page-info") == "1–6 of 6"
    disputed_row = page.locator(f"#item-table tr[data-item='{ids[2]}']")
    assert disputed_row.locator(".status-disputed").count() == 1
    assert "annotator-user LCA" in disputed_row.locator("td.labels").inner_text()

    page.select_option("#item-filters select[name=status]", "disputed")
    settle(page)
    assert shown(page) == [ids[2]]
    page.select_option("#item-filters select[name=status]", "skipped")
    settle(page)
    assert shown(page) == [ids[3]]
    page.select_option("#item-filters select[name=status]", "")
    page.select_option("#item-filters select[name=split]", "train")
    settle(page)
    assert shown(page) == [ids[0], ids[1], ids[4], ids[5]]
    page.select_option("#item-filters select[name=labelled_class]", "RCA")
    settle(page)
    assert shown(page) == [ids[1]]
    page.select_option("#item-filters select[name=labelled_class]", "")
    page.fill("#item-filters input[name=uncertainty_min]", "0.35")
    page.press("#item-filters input[name=uncertainty_min]", "Enter")
    settle(page)
    assert shown(page) == [ids[1], ids[4], ids[5]]
    page.select_option("#item-filters select[name=annotator]", "annotator-user")
    settle(page)
    assert shown(page) == [ids[1]]

    # The filters live in the address: a reload shows the same list.
    page.reload()
    settle(page)
    assert shown(page) == [ids[1]]
    assert page.input_value("#item-filters select[name=split]") == "train"
    page.click("#filters-clear")
    page.wait_for_function(f"document.querySelectorAll('#item-table tbody tr').length === {len(ids)}")
    settle(page)

    # Sort by the champion's uncertainty, then the other way round.
    page.click("#item-table button.sort[data-sort=uncertainty]")
    settle(page)
    assert shown(page) == [ids[3], ids[0], ids[2], ids[4], ids[1], ids[5]]
    assert page.get_attribute("#item-table th:has(button[data-sort=uncertainty])", "aria-sort") == "ascending"
    page.click("#item-table button.sort[data-sort=uncertainty]")
    settle(page)
    assert shown(page) == [ids[5], ids[1], ids[4], ids[2], ids[0], ids[3]]
    page.click("#item-table button.sort[data-sort=labels]")
    settle(page)
    assert shown(page)[0] in (ids[3], ids[4], ids[5]) and shown(page)[-1] == ids[2]

    # Paging.
    page.select_option("#item-filters select[name=limit]", "25")
    settle(page)
    screenshot("item-browser")

    # Open the disputed run in its tool: the workspace, on that item.
    page.click(f"#item-table tr[data-item='{ids[2]}'] a.open-item")
    page.wait_for_url(f"{live_server.url}/projects/{vessel_project.slug}/label/?item={ids[2]}")
    page.wait_for_selector(f"#workspace[data-state='ready'][data-item-id='{ids[2]}']")
    assert page.inner_text("#item-title") == runs[2].title
    page.go_back()
    settle(page)
    page.click(f"#item-table tr[data-item='{ids[2]}'] a.adjudicate-item")
    page.wait_for_url(f"{live_server.url}/projects/{vessel_project.slug}/adjudicate/{ids[2]}/")


def test_a_lead_excludes_and_includes_items_in_bulk(page, live_server, runs, vessel_project, lead):
    ids = [item.pk for item in runs]
    log_in(page, live_server, lead.username)
    page.wait_for_selector("#projects")
    open_browser(page, live_server, vessel_project)
    assert page.is_disabled("#bulk button[data-action=exclude]")
    page.check(f"#item-table tr[data-item='{ids[4]}'] input.pick")
    page.check(f"#item-table tr[data-item='{ids[5]}'] input.pick")
    assert page.inner_text("#selected-count") == "2 items selected"
    page.click("#bulk button[data-action=exclude]")
    page.wait_for_function("document.getElementById('bulk-result').textContent.startsWith('Exclude: 2 excluded')")
    settle(page)
    assert set(Item.objects.filter(excluded_at__isnull=False).values_list("pk", flat=True)) == {ids[4], ids[5]}
    for pk in (ids[4], ids[5]):
        assert page.locator(f"#item-table tr[data-item='{pk}'] .flag.excluded").count() == 1
    assert page.inner_text("#selected-count") == "No item selected."

    page.select_option("#item-filters select[name=excluded]", "true")
    settle(page)
    assert shown(page) == [ids[4], ids[5]]
    page.check("#select-page")
    page.click("#bulk button[data-action=include]")
    page.wait_for_function("document.getElementById('bulk-result').textContent.startsWith('Include: 2 included again')")
    settle(page)
    assert shown(page) == []
    assert page.is_visible("#items-empty")
    assert not Item.objects.filter(excluded_at__isnull=False).exists()

    # An action that changes nothing says so; one the server refuses says why.
    page.select_option("#item-filters select[name=excluded]", "")
    settle(page)
    page.check(f"#item-table tr[data-item='{ids[0]}'] input.pick")
    page.click("#bulk button[data-action=mark_gold]")
    page.wait_for_function("document.getElementById('bulk-result').textContent.includes(\"no lead's label\")")
    assert not Item.objects.filter(is_gold=True).exists()


def test_annotators_get_the_leads_only_page(page, live_server, runs, vessel_project, annotator):
    log_in(page, live_server, annotator.username)
    page.wait_for_selector("#projects")
    page.goto(f"{live_server.url}/projects/{vessel_project.slug}/")
    assert page.locator("#items-link").count() == 0
    response = page.goto(f"{live_server.url}/projects/{vessel_project.slug}/items/")
    assert response.status == 403 and "The item browser" in page.inner_text("#forbidden")


def test_the_item_browser_runs_under_the_content_security_policy(browser, live_server, runs, vessel_project, lead):
    with policed_page(browser) as page:
        log_in(page, live_server, lead.username)
        page.wait_for_selector("#projects")
        response = page.goto(f"{live_server.url}/projects/{vessel_project.slug}/items/?status=labelled")
        assert "default-src 'self'" in response.headers["content-security-policy"]
        settle(page)
        assert len(page.locator("#item-table tbody tr").all()) == 3
        page.click("#item-table button.sort[data-sort=uncertainty]")
        settle(page)
        assert _violations(page) == []
