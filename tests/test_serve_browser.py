"""`convostore serve` in a real browser: what a person does with the archive, story by story.

The system Chromium (Playwright, tests/fixtures_browser.py) browses the app under uvicorn
(tests/fixtures_serve.py) over an archive recorded through the real SDK: a branched
conversation with signed thoughts, a function call, an image and a sound, XSS payloads in
a stored answer, and a replay run. Every page a test opens is watched: no dialog may open,
no Content-Security-Policy violation may be reported and nothing may load from outside
the app (the `browse` fixture checks after each test).
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from convostore.cli import cli

from .fixtures_serve import REPLAY_MODEL, ServeArchive, serving
from .serve_helpers import XSS

TIMEOUT_MS = 20_000  # a shared, loaded machine: an upper bound on waiting for an event, not a timing


def tid(name: str, id: str | None = None) -> str:  # noqa: A002 - the page's attribute
    """The selector of a `data-testid` hook (serve-contract.md), optionally with its `data-id`."""
    return f'[data-testid="{name}"]' + (f'[data-id="{id}"]' if id else "")


class Watch:
    """What a page did that it must not: dialogs, CSP violations, requests leaving the app."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.dialogs: list[str] = []
        self.csp: list[str] = []
        self.errors: list[str] = []
        self.outside: list[str] = []

    def attach(self, page: Any) -> None:
        def dialog(d: Any) -> None:
            self.dialogs.append(f"{d.type}: {d.message}")
            d.dismiss()

        def console(msg: Any) -> None:
            if "Content Security Policy" in msg.text or "Content-Security-Policy" in msg.text:
                self.csp.append(msg.text)

        page.on("dialog", dialog)
        page.on("console", console)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("request", lambda r: None if r.url.startswith(self.base) or r.url.startswith("data:") else self.outside.append(r.url))

    def clean(self) -> None:
        assert self.dialogs == [], f"a dialog opened: stored text ran as script: {self.dialogs}"
        assert self.csp == [], f"the page tried something its Content-Security-Policy refused: {self.csp}"
        assert self.errors == [], f"the page's own script failed: {self.errors}"
        assert self.outside == [], f"the page fetched from outside the app: {self.outside}"


@pytest.fixture
def browse(chromium: Any, serve_url: str) -> Iterator[tuple[Any, Watch]]:
    """A fresh browser context on the app, clipboard allowed, watched (see `Watch`)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    context = chromium.new_context(base_url=serve_url, viewport={"width": 1280, "height": 900},
                                   permissions=["clipboard-read", "clipboard-write"])
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    watch = Watch(serve_url)
    watch.attach(page)
    try:
        yield page, watch
        watch.clean()
    finally:
        context.close()


def copied(page: Any) -> str:
    """What the clipboard holds once something is copied into it (the buttons copy asynchronously)."""
    text = page.evaluate("""async (limit) => {
        const end = performance.now() + limit;
        while (performance.now() < end) {
            const text = await navigator.clipboard.readText();
            if (text) return text;
            await new Promise(requestAnimationFrame);
        }
        return null;
    }""", TIMEOUT_MS)
    assert text, "nothing was copied"
    return str(text)


def turn_ids(page: Any) -> list[str]:
    return [t.get_attribute("data-id") for t in page.locator(tid("turn")).all()]


def test_the_list_shows_conversations_newest_first(browse, serve_archive: ServeArchive):
    page, _ = browse
    ids = serve_archive.ids
    page.goto("/")
    rows = page.locator(tid("conv-row"))
    rows.first.wait_for()
    shown = [r.get_attribute("data-id") for r in rows.all()]
    recorded = serve_archive.conversations  # oldest first
    assert all(c in shown for c in recorded), (recorded, shown)
    assert [c for c in shown if c in recorded] == recorded[::-1]
    # Each row starts with the conversation's first user words, as text; its turns and models follow.
    assert XSS[0] in page.locator(tid("conv-row", ids["xss"])).text_content()
    root = page.locator(tid("conv-row", ids["root"])).text_content()
    assert "Hello, my name is Ada." in root and "gemini-3-pro" in root


def test_search_finds_a_turn_and_opens_it_in_its_branch(browse, serve_archive: ServeArchive):
    from playwright.sync_api import expect

    page, _ = browse
    ids = serve_archive.ids
    page.goto("/")
    page.locator(tid("search-input")).fill("chess")
    page.locator(tid("search-input")).press("Enter")
    hit = page.locator(tid("search-result", ids["t2"]))  # (its replay matches too)
    expect(hit).to_be_visible()
    assert "I like chess." in hit.text_content()
    hit.locator("a").first.click()
    expect(page.locator(tid("turn", ids["t2"]))).to_be_visible()
    assert turn_ids(page)[:2] == [ids["root"], ids["t2"]] and ids["alt"] not in turn_ids(page)  # its branch, not the newest


def test_switching_branch_shows_the_other_branchs_turns(browse, serve_archive: ServeArchive):
    from playwright.sync_api import expect

    page, _ = browse
    ids = serve_archive.ids
    page.goto(f"/conversations/{ids['root']}")
    expect(page.locator(tid("turn", ids["alt"]))).to_be_visible()  # the newest turn's branch first
    assert turn_ids(page) == [ids["root"], ids["alt"]]
    assert page.locator(tid("branch-link", ids["alt"])).get_attribute("aria-current") == "true"
    page.locator(tid("branch-link", ids["t3"])).click()
    expect(page.locator(tid("turn", ids["t3"]))).to_be_visible()
    assert turn_ids(page) == [ids["root"], ids["t2"], ids["t3"]]
    assert "Your name is Ada" in page.locator(tid("turn", ids["t3"])).text_content()
    assert page.locator(tid("branch-link", ids["t3"])).get_attribute("aria-current") == "true"
    assert page.locator(tid("branch-link", ids["alt"])).get_attribute("aria-current") != "true"


def test_an_image_and_a_sound_from_the_archive_play_in_the_page(browse, serve_archive: ServeArchive):
    from playwright.sync_api import expect

    page, _ = browse
    ids = serve_archive.ids
    page.goto(f"/conversations/{ids['image']}")
    image = page.locator(tid("turn", ids["image"])).locator(tid("media-image"))
    expect(image).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    assert image.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [24, 24]  # the recorded PNG, decoded
    page.goto(f"/conversations/{ids['sound']}")
    audio = page.locator(tid("turn", ids["sound"])).locator(tid("media-audio"))
    expect(audio).to_have_count(1)
    audio.evaluate("a => { a.preload = 'metadata'; a.load(); }")  # what pressing play starts (preload is none)
    page.wait_for_function("a => a.readyState >= 1 && a.duration > 0.2", arg=audio.element_handle())  # the WAV's 0.25 s


def test_a_thought_is_collapsed_until_clicked_and_shows_its_signed_badge(browse, serve_archive: ServeArchive):
    from playwright.sync_api import expect

    page, _ = browse
    ids = serve_archive.ids
    page.goto(f"/conversations/{ids['root']}?branch={ids['t3']}")
    thought = page.locator(tid("turn", ids["root"])).locator(tid("thought"))
    expect(thought).to_have_count(1)
    words = thought.get_by_text("Thinking about: Hello, my name is Ada.")
    expect(words).to_be_hidden()
    thought.locator("summary").click()
    expect(words).to_be_visible()
    expect(thought.locator(tid("signed-badge"))).to_be_visible()
    # Each of the thinking model's three turns carries one signed thought.
    expect(page.locator(tid("signed-badge"))).to_have_count(3)
    page.goto(f"/conversations/{ids['call']}")
    expect(page.locator(tid("function-call"))).to_have_count(1)
    expect(page.locator(tid("thought"))).to_have_count(0)  # gemini-2.5-flash does not think in the sandbox


def test_function_calls_and_results_are_formatted_json(browse, serve_archive: ServeArchive):
    page, _ = browse
    ids = serve_archive.ids
    page.goto(f"/conversations/{ids['call']}")
    call = page.locator(tid("turn", ids["call"])).locator(tid("function-call"))
    result = page.locator(tid("turn", ids["result"])).locator(tid("function-result"))
    call.wait_for()
    assert "get_weather" in call.text_content() and '"city": "Paris"' in call.text_content()
    shown = result.text_content()
    assert '"temp": "21C"' in shown and "\n" in shown.strip()  # indented, not one line


def test_copy_buttons_copy_the_resume_command_and_the_history_json(browse, serve_archive: ServeArchive):
    from playwright.sync_api import expect

    page, _ = browse
    head = serve_archive.ids["t3"]
    page.goto(f"/interactions/{head}")
    turn = page.locator(tid("turn", head))
    expect(turn).to_be_visible()

    turn.locator(tid("copy-resume")).click()
    assert shlex.split(copied(page))[:3] == ["convostore", "resume", head]

    page.evaluate("navigator.clipboard.writeText('')")
    turn.locator(tid("copy-history")).click()
    history = copied(page)
    res = CliRunner().invoke(cli, ["--db", str(serve_archive.path), "history", head, "--json"])
    assert res.exit_code == 0, res.output
    assert orjson.loads(history) == orjson.loads(res.output)  # what `convostore history ID --json` prints


def test_a_runs_comparison_shows_the_replay_beside_the_original(browse, serve_archive: ServeArchive):
    from playwright.sync_api import expect

    page, _ = browse
    page.goto("/runs")
    row = page.locator(tid("run-row", serve_archive.run))
    expect(row).to_be_visible()
    assert REPLAY_MODEL in row.text_content()
    row.locator("a").first.click()
    comparison = page.locator(tid("comparison"))
    expect(comparison).to_be_visible()
    assert page.url.endswith(f"/runs/{serve_archive.run}")
    text = comparison.text_content()
    assert "gemini-3-pro" in text and REPLAY_MODEL in text
    expect(comparison.locator("tr.turn")).to_have_count(3)  # root -> t2 -> t3, side by side
    assert "What is my name?" in text and "Your name is Ada" in text


def test_an_open_conversation_shows_a_new_turn_live(browse, serve_archive: ServeArchive):
    from playwright.sync_api import expect

    page, _ = browse
    root = serve_archive.create("gemini-3-pro", "Hi, my name is Grace. Watching this live.")
    serve_archive.store.flush()
    page.goto(f"/conversations/{root}")
    expect(page.locator(tid("turn", root))).to_be_visible()
    expect(page.locator(tid("live-status"))).to_have_attribute("data-state", "live")
    url = page.url
    second = serve_archive.create("gemini-3-pro", "What is my name?", root)  # recorded by another "application"
    turn = page.locator(tid("turn", second))
    expect(turn).to_be_visible()
    assert "Your name is Grace" in turn.text_content()
    assert page.url == url and turn_ids(page) == [root, second]
    third = serve_archive.create("gemini-3-pro", "And a third turn.", second)
    expect(page.locator(tid("turn", third))).to_be_visible()


PAGES = ("/", "/search?q=alert", "/search?q=alert&order=newest", "/runs", "/expiring?within=400d", "/stats")


def test_stored_xss_never_runs_on_any_page(browse, serve_archive: ServeArchive):
    page, watch = browse
    ids = serve_archive.ids
    xss = [ids[k] for k in ("xss", "xss1", "xss2", "xss3")]
    urls = [*PAGES, f"/conversations/{xss[0]}", *(f"/interactions/{i}" for i in xss), f"/runs/{serve_archive.run}",
            f"/conversations/{ids['root']}"]
    for url in urls:
        response = page.goto(url)
        assert response is not None and response.status == 200, url
        policy = response.headers.get("content-security-policy", "")
        directives = {d.split()[0]: d for d in (part.strip() for part in policy.split(";")) if d}
        assert directives.get("default-src") in ("default-src 'self'", "default-src 'none'"), (url, policy)
        scripts = directives.get("script-src", directives["default-src"])
        assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts, (url, policy)
        # Stored markup stays text: no element came out of it.
        assert page.locator("img[src='x'], a[href^='javascript:' i], [onerror], b").count() == 0, url
        assert all("alert(" not in s for s in page.locator("script").all_text_contents()), url
        watch.clean()
    page.goto(f"/conversations/{xss[0]}")
    shown = page.locator("#turns").text_content()
    for payload in XSS:  # the user's words and the model's answer, as text
        assert shown.count(payload) >= 2, payload


def test_a_token_is_required_and_accepted_from_the_url(chromium: Any, serve_archive: ServeArchive):
    with serving(serve_archive, token="s3cret-token") as url:
        context = chromium.new_context()
        try:
            page = context.new_page()
            assert page.goto(f"{url}/").status == 401
            assert page.goto(f"{url}/api/stats").status == 401
            assert page.goto(f"{url}/?token=wrong").status == 401
            assert page.goto(f"{url}/?token=s3cret-token").status == 200
            assert "token" not in page.url  # dropped from the address bar (and history) once it is a cookie
            page.locator(tid("conv-row")).first.wait_for()
            assert page.goto(f"{url}/conversations/{serve_archive.ids['root']}").status == 200  # the cookie carries it
            assert context.request.get(f"{url}/api/stats").status == 200
        finally:
            context.close()
        bearer = chromium.new_context()  # a script's way: the header, no cookie
        try:
            assert bearer.request.get(f"{url}/api/stats", headers={"Authorization": "Bearer s3cret-token"}).status == 200
            assert bearer.request.get(f"{url}/api/stats", headers={"Authorization": "Bearer nope"}).status == 401
        finally:
            bearer.close()


def test_a_turn_recorded_on_another_branch_is_announced_not_mixed_in(browse, serve_archive: ServeArchive):
    from playwright.sync_api import expect

    page, _ = browse
    root = serve_archive.create("gemini-3-pro", "Hi, my name is Alan. Two paths from here.")
    older = serve_archive.create("gemini-3-pro", "Path one.", root)
    serve_archive.create("gemini-3-pro", "Path two.", root)
    serve_archive.store.flush()
    page.goto(f"/conversations/{root}?branch={older}")  # not the newest branch
    expect(page.locator(tid("live-status"))).to_have_attribute("data-state", "live")
    notice = page.locator(tid("elsewhere-link"))
    expect(notice).to_be_hidden()  # nothing new yet
    later = serve_archive.create("gemini-3-pro", "Path three, recorded while you look at path one.", root)
    expect(notice).to_be_visible()
    assert turn_ids(page) == [root, older]
    notice.click()
    expect(page.locator(tid("turn", later))).to_be_visible()
