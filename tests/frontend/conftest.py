"""Playwright driving Debian's chromium (never a downloaded browser build)."""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("LUMEN_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Playwright's wait_for_function evaluates its predicate with eval, which the site's content security policy
# forbids; the tests' contexts bypass the policy, and test_browser_csp.py checks the pages under it.
CONTEXT = {"viewport": {"width": 1280, "height": 800}, "bypass_csp": True}


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"chromium not found at {CHROMIUM}: `make test` installs Debian's chromium package")
    # Playwright's sync API runs an event loop in this thread; the ORM calls in these tests are safe here.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@contextmanager
def settled_context(browser, **options):
    """A browser context closed only once its requests have finished: the shell's prefetches, a playing run's
    frames and the draft a page sends as it unloads must not reach the live server while the test database is
    flushed (a request still reading tables then deadlocks with the flush)."""
    context = browser.new_context(**options)
    in_flight = set()
    context.on("request", lambda request: in_flight.add(request))
    context.on("response", lambda response: in_flight.discard(response.request))
    context.on("requestfinished", lambda request: in_flight.discard(request))
    context.on("requestfailed", lambda request: in_flight.discard(request))

    def settle(page) -> None:
        for _ in range(100):
            if not in_flight:
                return
            page.wait_for_timeout(50)

    try:
        yield context
        for page in context.pages:
            settle(page)
            page.goto("about:blank")
            page.wait_for_timeout(300)  # a keepalive draft sent as the page unloads is not always reported
            settle(page)
    finally:
        context.close()


@pytest.fixture
def page(browser):
    """A fresh page in a context of its own, closed once its requests have finished (`settled_context`)."""
    with settled_context(browser, **CONTEXT) as context:
        yield context.new_page()


@pytest.fixture
def screenshot(page):
    def take(name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
