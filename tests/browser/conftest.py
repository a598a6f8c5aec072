"""Playwright fixtures for the browser tests: one headless Debian Chromium per session, a fresh
context per test, console/page errors collected, and a screenshot + the page HTML saved to
test-artifacts/ when a test fails.

Chromium comes from Debian (`scripts/install-browser.sh`), never from `playwright install`.
"""
import os
import re
from pathlib import Path

import pytest

# Playwright's sync API runs an asyncio event loop in the test thread, so Django would raise
# SynchronousOnlyOperation for ORM calls made by the tests; this is Django's documented switch
# for exactly this case (the ORM is still used synchronously, in one thread). Set at import:
# the session's database setup may already run inside Playwright's loop. Subprocesses that
# must not inherit it (the deploy check in test_compose.py) drop it themselves.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DEFAULT_TIMEOUT_MS = 10_000


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the item (rep_setup, rep_call, rep_teardown) so the page
    # fixture's teardown can tell whether the test failed.
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(
            f"BROWSER TESTS NOT RUN: {CHROMIUM} is missing — install Debian's chromium with "
            "scripts/install-browser.sh (never `playwright install`)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class PageErrors(list):
    """Console errors and uncaught page exceptions seen by one page, as strings.

    The browser's own /favicon.ico probe is ignored: the site declares no icon, and that 404
    says nothing about the page under test."""

    def attach(self, page):
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.append(f"pageerror: {exc}"))

    def _console(self, msg):
        if msg.type != "error":
            return
        url = (msg.location or {}).get("url", "")
        if url.split("?")[0].endswith("/favicon.ico"):
            return
        self.append(f"console: {msg.text} ({url or 'no url'})")


@pytest.fixture
def page_errors():
    return PageErrors()


@pytest.fixture
def page(request, browser, live_server, page_errors):
    """A page in a fresh browser context whose relative URLs go to the live server."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    page = context.new_page()
    page_errors.attach(page)
    yield page
    reports = (getattr(request.node, f"rep_{when}", None) for when in ("setup", "call"))
    if any(rep is not None and rep.failed for rep in reports):
        _save_artifacts(page, request.node.nodeid, page_errors)
    context.close()


def _save_artifacts(page, nodeid, errors):
    ARTIFACTS.mkdir(exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid.split("::", 1)[-1])[:150]
    try:
        page.screenshot(path=str(ARTIFACTS / f"{stem}.png"), full_page=True)
        (ARTIFACTS / f"{stem}.html").write_text(f"<!-- url: {page.url} -->\n{page.content()}", encoding="utf-8")
        if errors:
            (ARTIFACTS / f"{stem}.errors.txt").write_text("\n".join(errors) + "\n", encoding="utf-8")
    except Exception as exc:  # a dead page must not hide the real failure
        print(f"browser: could not save failure artifacts for {nodeid}: {exc}")
    else:
        print(f"browser: failure artifacts in {ARTIFACTS}/{stem}.*")
