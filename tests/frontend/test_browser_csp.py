"""Every page under the site's content security policy (no bypass): nothing the pages load or run is refused."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from tests import dicom_samples as samples
from tests.annotation.test_ingest import run
from tests.frontend.conftest import settled_context
from tests.frontend.test_browser_import import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Recorded in every document before its own scripts run (an init script is not subject to the page's policy).
WATCH = """document.addEventListener('securitypolicyviolation', e => {
  (window.__cspViolations = window.__cspViolations || []).push(`${e.violatedDirective} ${e.blockedURI}`);
});"""


@contextmanager
def policed_page(browser, **options):
    """A page under the site's content security policy (no bypass) that records whatever the policy refuses
    (`_violations`), in a context closed once its requests have finished (`settled_context`)."""
    with settled_context(browser, **{"viewport": {"width": 1280, "height": 800}, **options}) as context:
        context.add_init_script(WATCH)
        page = context.new_page()
        refused: list[str] = []
        page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
        page.refused = refused
        yield page


@pytest.fixture
def strict_page(browser):
    with policed_page(browser) as page:
        yield page


def _violations(page) -> list[str]:
    return page.evaluate("window.__cspViolations || []") + page.refused


def test_the_pages_run_under_the_content_security_policy(strict_page, live_server, lead, annotator, vessel_project):
    run(vessel_project, *[(f"run{i}.dcm", samples.xa_bytes(seed=70 + i, frames=6, size=48)) for i in range(2)])
    page = strict_page
    response = page.goto(f"{live_server.url}/login/")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    log_in(page, live_server, lead.username)
    page.wait_for_selector("#projects")
    for path, ready in [
        (f"/projects/{vessel_project.slug}/", "#import[data-ready]"),
        (f"/projects/{vessel_project.slug}/quality/", "main"),
        ("/api/docs/", ".swagger-ui .info"),
    ]:
        page.goto(f"{live_server.url}{path}")
        page.wait_for_selector(ready)
        assert _violations(page) == [], path
    page.goto(f"{live_server.url}/")
    page.click("form[action$='/logout/'] button")
    log_in(page, live_server, annotator.username)
    page.goto(f"{live_server.url}/projects/{vessel_project.slug}/label/")
    page.wait_for_selector("#workspace[data-state=ready]")
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    page.wait_for_selector("#workspace[data-state=ready]")
    assert _violations(page) == []
