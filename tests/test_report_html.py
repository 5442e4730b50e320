"""The HTML comparison report renders in a real browser and shows every turn."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

import convostore
from convostore.comparison import compare
from convostore.replaying import replay
from convostore.report import render


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    if os.environ.get("CONVOSTORE_REQUIRE_CHROMIUM"):
        pytest.fail("chromium is required (CONVOSTORE_REQUIRE_CHROMIUM=1) but was not found: apt-get install chromium")
    pytest.skip("chromium not installed: apt-get install chromium to run this locally; CONVOSTORE_REQUIRE_CHROMIUM=1 makes this a failure, as in CI")


def test_html_report_renders_every_turn_in_headless_chromium(client, store, sandbox, tmp_path):
    browser = _chromium()
    rc = convostore.record(client, store=store)
    prev = None
    questions = ["Hi, my name is Karthik.", "I like cricket.", "What is my name?", "Which sport do I like?"]
    for q in questions:
        kwargs = {"previous_interaction_id": prev} if prev else {}
        prev = rc.interactions.create(model="gemini-2.5-flash", input=q, **kwargs).id
    replay(store, prev, model="gemini-2.5-pro", client=rc)
    page = tmp_path / "report.html"
    page.write_text(render(compare(store, prev), "html"), encoding="utf-8")

    profile = tmp_path / "profile"
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=90,
    ).stdout
    assert dom.count('class="turn"') == len(questions)
    for q in questions:
        assert q in dom
    assert dom.count("<svg") == 2  # latency and tokens charts
    shot = tmp_path / "report.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         f"--user-data-dir={profile}", f"--screenshot={shot}", "--window-size=1200,900", page.as_uri()],
        capture_output=True, timeout=90,
    )
    assert shot.exists() and shot.stat().st_size > 5000
