"""The HTML comparison report in a real browser: every turn shown, 1,000 conversations navigable, nothing fetched.

Playwright drives the system Chromium (``chromium``: tests/fixtures_browser.py).
"""

from __future__ import annotations

import pytest

import convostore
from convostore.comparison import compare
from convostore.replaying import replay
from convostore.report import render

from .synthetic_runs import seed


@pytest.fixture
def browser_page(chromium):
    """A headless Chromium page that records every request other than the report file itself."""
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    page.outside = []  # type: ignore[attr-defined]
    page.on("request", lambda r: None if r.url.startswith("file://") else page.outside.append(r.url))  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        page.close()


def test_html_report_renders_every_turn_in_headless_chromium(client, store, sandbox, tmp_path, browser_page):
    rc = convostore.record(client, store=store)
    prev = None
    questions = ["Hi, my name is Karthik.", "I like cricket.", "What is my name?", "Which sport do I like?"]
    for q in questions:
        kwargs = {"previous_interaction_id": prev} if prev else {}
        prev = rc.interactions.create(model="gemini-2.5-flash", input=q, **kwargs).id
    replay(store, prev, model="gemini-2.5-pro", client=rc)
    page_file = tmp_path / "report.html"
    page_file.write_text(render(compare(store, prev), "html"), encoding="utf-8")

    page = browser_page
    page.goto(page_file.as_uri())
    assert page.locator("tr.turn").count() == len(questions)
    text = page.locator("body").inner_text()
    for q in questions:
        assert q in text
    assert page.locator("svg").count() == 2  # latency distribution, similarity histogram
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 5000
    assert page.outside == []


def test_a_report_over_1000_conversations_is_navigable_and_self_contained(sqlite_store, tmp_path, browser_page):
    runs = seed(sqlite_store, 1000, turns=2, models=("gemini-2.5-pro",))  # bench/bench_compare.py: 3 runs x 5 turns
    page_file = tmp_path / "report.html"
    page_file.write_text(render(compare(sqlite_store, *runs), "html"), encoding="utf-8")

    page = browser_page
    page.goto(page_file.as_uri())
    assert page.locator("#conversations tr.conv").count() == 1000
    assert page.locator("section.conversation").count() == 1000
    assert page.locator("section.conversation tr.turn").count() == 2000
    assert page.locator("#totals tbody tr").count() == 2  # the original and the run
    assert page.locator("svg").count() == 2
    # The list links to each conversation's turn table, and back.
    row = page.locator("#conversations tr.conv").nth(499)
    head = row.locator("a").inner_text()
    row.locator("a").click()
    assert page.evaluate("location.hash") == "#c500"
    section = page.locator("section#c500")
    assert head in section.locator("h3").inner_text() and section.locator("tr.turn").first.is_visible()
    section.locator("a", has_text="back to the list").click()
    assert page.evaluate("location.hash") == "#conversations"
    # Stored text is text: the synthetic answers' "<b>bold</b>" never becomes markup, and nothing runs or loads.
    assert page.locator("section.conversation b").count() == 0 and "<b>bold</b>" in page.locator("section#c1").inner_text()
    assert page.locator("script, link, img, iframe").count() == 0
    assert page.outside == []
