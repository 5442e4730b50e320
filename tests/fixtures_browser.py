"""Fixtures: the system Chromium driven by Playwright for Python.

Playwright's own browser download needs the network, which CI does not have, so the
system Chromium is launched by ``executable_path``. One browser per test module, not per
session: Playwright's sync API keeps an event loop running on the main thread while it is
open, and other modules' tests call ``asyncio.run``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest


def chromium_path() -> str:
    """The system Chromium; skipped when absent, failed when CONVOSTORE_REQUIRE_CHROMIUM is set (CI)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    if path:
        return path
    if os.environ.get("CONVOSTORE_REQUIRE_CHROMIUM"):
        pytest.fail("chromium is required (CONVOSTORE_REQUIRE_CHROMIUM=1) but was not found: apt-get install chromium")
    pytest.skip("chromium not installed: apt-get install chromium to run this locally; CONVOSTORE_REQUIRE_CHROMIUM=1 makes this a failure, as in CI")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the test module; each test opens its own context or page."""
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True,
                                    args=["--disable-gpu", "--no-first-run", "--disable-background-networking"])
        try:
            yield browser
        finally:
            browser.close()
