"""Playwright driving Debian's chromium (never a downloaded browser build)."""

from __future__ import annotations

import os
import shutil
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


@pytest.fixture
def page(browser):
    """A fresh page, closed only once its requests have finished: the shell's prefetches and the draft it
    sends as the page unloads must not reach the live server while the test database is flushed."""
    context = browser.new_context(**CONTEXT)
    in_flight = set()
    context.on("request", lambda request: in_flight.add(request))
    context.on("response", lambda response: in_flight.discard(response.request))
    context.on("requestfinished", lambda request: in_flight.discard(request))
    context.on("requestfailed", lambda request: in_flight.discard(request))
    page = context.new_page()

    def settle() -> None:
        for _ in range(100):
            if not in_flight:
                return
            page.wait_for_timeout(50)

    yield page
    try:
        settle()
        page.goto("about:blank")
        page.wait_for_timeout(300)  # a keepalive draft sent as the page unloads is not always reported
        settle()
    finally:
        context.close()


@pytest.fixture
def screenshot(page):
    def take(name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
