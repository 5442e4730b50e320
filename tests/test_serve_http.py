"""`convostore serve` over real HTTP: uvicorn in a thread, an archive recorded through the
real SDK on the sandbox. Pages, the JSON API (the CLI's --json, exactly), safety
(escaping, headers, token, Host), media, live updates."""

from __future__ import annotations

import re

import httpx
import orjson
import pytest
from click.testing import CliRunner

from convostore import Sandbox, Store, record, wire
from convostore.cli import cli
from convostore.pytest_plugin import sandbox_client
from convostore.serve.security import CSP
from tests.serve_helpers import XSS, fill_archive, running_app


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """(db path, store, recorded client, ids, sandbox): one archive for the module."""
    db = tmp_path_factory.mktemp("serve") / "archive.db"
    store = Store(db)
    with Sandbox() as sb:
        client = record(sandbox_client(sb.base_url), store=store)
        ids = fill_archive(client)
        store.flush()
        yield db, store, client, ids, sb
        client.close()
    store.close()


@pytest.fixture(scope="module")
def base(archive):
    with running_app(archive[1], poll_interval=0.05) as url:
        yield url


@pytest.fixture(scope="module")
def ids(archive):
    return archive[3]


def get(base: str, path: str, **kwargs) -> httpx.Response:
    return httpx.get(base + path, timeout=30, **kwargs)


def hooks(html: str, name: str) -> list[str]:
    """The data-id of each element carrying data-testid=name (in document order)."""
    out = []
    for tag in re.findall(r"<[^>]*data-testid=\"" + re.escape(name) + r"\"[^>]*>", html):
        m = re.search(r'data-id="([^"]*)"', tag)
        out.append(m.group(1) if m else "")
    return out


def test_conversations_page_lists_newest_first_with_rows_and_search_box(base, ids):
    r = get(base, "/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    rows = hooks(r.text, "conv-row")
    assert rows[0] == ids["xss"]  # the conversation recorded last
    assert {ids["root"], ids["image"], ids["call"]} <= set(rows)
    assert 'data-testid="search-input"' in r.text
    assert "Hello, my name is Ada." in r.text


def test_conversations_page_paginates_by_cursor_and_filters(base, ids):
    flash = hooks(get(base, "/?model=gemini-2.5-flash").text, "conv-row")
    assert {ids["image"], ids["call"], ids["xss"]} <= set(flash)
    none = get(base, "/?model=no-such-model").text
    assert hooks(none, "conv-row") == [] and "No conversations match." in none
    cursor = get(base, "/api/conversations?limit=2").json()["next"]
    three = [c["id"] for c in get(base, "/api/conversations?limit=3").json()["items"]]
    second = hooks(get(base, "/?after=" + cursor).text, "conv-row")
    assert second[0] == three[2] and three[1] not in second
    bad = get(base, "/?after=not-a-cursor")
    assert bad.status_code == 400 and "not a conversations cursor" in bad.text
    assert get(base, "/?since=yesterday-ish").status_code == 400


def test_conversation_page_shows_branch_turns_thoughts_and_tools(base, ids):
    r = get(base, f"/conversations/{ids['t2']}")
    assert r.status_code == 200
    assert hooks(r.text, "turn") == [ids["root"], ids["t2"], ids["t3"]]
    assert set(hooks(r.text, "branch-link")) == {ids["t3"], ids["alt"]}
    assert r.text.count('data-testid="thought"') == 3 and r.text.count('data-testid="signed-badge"') == 3
    assert 'data-testid="copy-resume"' in r.text and f'/api/history/{ids["t3"]}' in r.text
    other = get(base, f"/conversations/{ids['root']}?branch={ids['alt']}")
    assert hooks(other.text, "turn") == [ids["root"], ids["alt"]]
    tools = get(base, f"/conversations/{ids['call']}").text
    assert 'data-testid="function-call"' in tools and 'data-testid="function-result"' in tools
    assert "&#34;city&#34;: &#34;Paris&#34;" in tools


def test_interaction_redirects_to_its_turn(base, ids):
    r = get(base, f"/interactions/{ids['t2']}", follow_redirects=False)
    assert r.status_code == 302
    assert r.headers["location"] == f"/conversations/{ids['root']}?branch={ids['t2']}#turn-{ids['t2']}"


def test_image_inline_from_the_archive(base, ids):
    html = get(base, f"/conversations/{ids['image']}").text
    src = re.search(r'<img[^>]*data-testid="media-image"[^>]*src="([^"]+)"', html).group(1)
    assert re.fullmatch(r"/media/[0-9a-f]{64}", src)
    r = get(base, src)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content.startswith(b"\x89PNG")
    assert get(base, "/media/" + "0" * 64).status_code == 404


def test_media_of_other_types_is_a_download(archive, base):
    import base64

    store, client = archive[1], archive[2]
    page = b"<html><script>alert(1)</script>" + b"x" * 2048
    turn = client.interactions.create(model="gemini-2.5-flash", input=[
        {"type": "text", "text": "read this"},
        {"type": "document", "data": base64.b64encode(page).decode(), "mime_type": "text/html"}])
    store.flush()
    html = get(base, f"/conversations/{turn.id}").text
    href = re.search(r'data-testid="media-file" href="(/media/[0-9a-f]{64})"', html).group(1)
    r = get(base, href)
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"].startswith("attachment")
    assert r.content == page


def test_search_page_and_order(base, ids):
    r = get(base, "/search?q=chess")
    assert ids["t2"] in hooks(r.text, "search-result")
    assert get(base, "/search?q=chess&order=newest").status_code == 200
    assert get(base, "/search?q=chess&order=sideways").status_code == 400


@pytest.mark.parametrize("path", ["/", "/search?q=alert", "/search?q=onerror", "/expiring?within=60d", "/stats", "/runs",
                                  "CONV", "API"])
def test_stored_markup_is_escaped_everywhere(base, ids, path):
    if path == "CONV":
        path = f"/conversations/{ids['xss']}?branch={ids['xss3']}"
    if path == "API":
        path = f"/api/conversations/{ids['xss']}/turns?since={ids['xss']}"
    body = get(base, path).text
    if path.startswith("/api/"):
        body = orjson.loads(body)["html"]
    for raw in ("<script>alert", "<img src=x", "</textarea><script>", "<b>bold</b>", 'href="javascript:', "onerror=alert(1)>"):
        assert raw not in body, (path, raw)
    if path.startswith(("/conversations", "/api", "/search", "/?", "/")) and path not in ("/expiring?within=60d", "/stats", "/runs"):
        assert "&lt;b&gt;bold&lt;/b&gt;" in body, path  # the stored text is there, as text


def test_conversation_page_escapes_each_payload_in_user_and_model_text(base, ids):
    body = get(base, f"/conversations/{ids['xss']}?branch={ids['xss3']}").text
    assert body.count("&lt;/textarea&gt;&lt;script&gt;") == 2  # the user's words and the model's echo
    assert "[click me](javascript:alert(3))" in body  # a javascript: link stays text
    assert '<script src="/static/app.js" defer></script>' in body
    assert len(re.findall(r"<script", body)) == 1


def test_security_headers_on_every_kind_of_response(base, ids):
    for path in ["/", f"/conversations/{ids['root']}", "/api/stats", "/static/app.js", "/static/report.css", "/nope",
                 "/api/interactions/nope"]:
        r = get(base, path)
        assert r.headers["content-security-policy"] == CSP, path
        assert r.headers["x-content-type-options"] == "nosniff", path
    assert "'unsafe-inline'" not in CSP


def test_unknown_ids_are_404_with_a_clear_message(base):
    page = get(base, "/conversations/v1_nothing-here")
    assert page.status_code == 404 and 'data-testid="error-page"' in page.text and "no interaction" in page.text
    api = get(base, "/api/interactions/v1_nothing-here")
    assert api.status_code == 404 and api.json() == {"error": api.json()["error"]} and "no interaction" in api.json()["error"]
    assert get(base, "/api/runs/nope").json()["error"] == "no replay run 'nope'"
    assert get(base, "/api/list?limit=lots").status_code == 400


#: The CLI prints these listings as JSON lines; the API sends the same objects as one array.
LISTINGS = {"list", "chain", "tree", "search", "runs", "expiring"}


def _cli_json(db, *args) -> object:
    result = CliRunner().invoke(cli, ["--db", str(db), *args, "--json"])
    assert result.exit_code == 0, result.output
    if args[0] in LISTINGS:
        return [orjson.loads(line) for line in result.stdout.splitlines()]
    return orjson.loads(result.stdout)


def test_api_is_what_the_cli_prints_with_json(archive, base, ids):
    from convostore.replaying import replay

    db, store, client = archive[0], archive[1], archive[2]
    run = replay(store, [ids["t3"]], model="gemini-2.5-flash", client=client)
    store.flush()
    pairs = [
        (f"/api/interactions/{ids['t2']}", ["show", ids["t2"]]),
        ("/api/list?limit=5", ["list", "--limit", "5"]),
        (f"/api/list?conversation={ids['t2']}", ["list", "--conversation", ids["t2"]]),
        ("/api/conversations?limit=3", ["conversations", "--limit", "3"]),
        (f"/api/chain/{ids['t3']}", ["chain", ids["t3"]]),
        (f"/api/tree/{ids['t2']}", ["tree", ids["t2"]]),
        (f"/api/history/{ids['t3']}", ["history", ids["t3"]]),
        (f"/api/history/{ids['t3']}?model=gemini-2.5-flash&format=turns", ["history", ids["t3"], "-m", "gemini-2.5-flash", "--format", "turns"]),
        ("/api/search?q=name", ["search", "name"]),
        ("/api/search?q=name&order=newest&limit=2", ["search", "name", "--newest", "-n", "2"]),
        ("/api/runs", ["runs"]),
        ("/api/expiring?within=60d", ["expiring", "--within", "60d"]),
        ("/api/stats", ["stats"]),
    ]
    for path, args in pairs:
        r = get(base, path)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json", path
        assert r.json() == _cli_json(db, *args), path
    compared = CliRunner().invoke(cli, ["--db", str(db), "compare", run.id, "--format", "json"])
    assert get(base, f"/api/runs/{run.id}").json() == orjson.loads(compared.stdout)


def test_runs_page_and_comparison_from_the_report_renderer(archive, base, ids):
    from convostore.comparison import compare
    from convostore.replaying import list_runs
    from convostore.report import render

    store = archive[1]
    if not list_runs(store):
        from convostore.replaying import replay

        replay(store, [ids["t3"]], model="gemini-2.5-flash", client=archive[2])
        store.flush()
    run = list_runs(store)[0]
    assert run.id in hooks(get(base, "/runs").text, "run-row")
    page = get(base, f"/runs/{run.id}").text
    start = page.index('<div class="comparison" data-testid="comparison">')
    file_html = render(compare(store, run.id), "html")
    body = file_html[file_html.index('<div class="comparison"'):file_html.index("</body>")]
    assert page[start:start + len(body)] == body  # the same renderer, byte for byte
    assert "<style" not in page and " style=" not in page


def test_expiring_and_stats_pages(base, ids):
    r = get(base, "/expiring?within=60d")
    assert ids["root"] in hooks(r.text, "expiring-row")
    assert hooks(get(base, "/expiring?within=1h").text, "expiring-row") == []
    stats = get(base, "/stats").text
    assert re.search(r'<svg[^>]*data-testid="stats-chart"', stats)
    assert "<rect" in stats and "gemini-3-pro" in stats


def test_live_events_announce_a_new_turn_and_the_page_fetches_it(archive, base, ids):
    store, client = archive[1], archive[2]
    head = ids["t3"]
    with httpx.stream("GET", base + f"/api/conversations/{head}/events", timeout=30) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        assert next(lines) == "event: hello"
        new = client.interactions.create(model="gemini-3-pro", input="Still there?", previous_interaction_id=head)
        store.flush()
        for line in lines:
            if line == "event: turn":
                break
        data = orjson.loads(next(lines).removeprefix("data: "))
        assert data["newest"] == new.id
    update = get(base, f"/api/conversations/{ids['root']}/turns?since={head}").json()
    assert update["leaf"] == new.id and update["count"] == 1
    assert hooks(update["html"], "turn") == [new.id]
    assert get(base, f"/api/conversations/{ids['root']}/state").json()["newest"] == new.id


def test_token_is_required_on_every_request(archive):
    store = archive[1]
    with running_app(store, token="s3cret-token") as url:
        for path in ["/", "/api/stats", "/static/app.css", "/media/" + "0" * 64, f"/api/conversations/{archive[3]['root']}/events"]:
            assert httpx.get(url + path).status_code == 401, path
        assert httpx.get(url + "/?token=wrong").status_code == 401
        assert httpx.get(url + "/api/stats", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        first = httpx.get(url + "/search?q=chess&token=s3cret-token", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/search?q=chess"
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        with httpx.Client(base_url=url) as browser:
            assert browser.get("/?token=s3cret-token", follow_redirects=True).status_code == 200
            assert browser.get("/static/app.js").status_code == 200


def test_without_a_token_only_loopback_host_names_are_answered(base):
    assert get(base, "/", headers={"Host": "evil.example"}).status_code == 400  # DNS rebinding
    assert get(base, "/", headers={"Host": "localhost:1234"}).status_code == 200


def test_a_turn_that_changes_is_shown_as_it_is_now(archive, base):
    """Rendered turns are reused only while nothing they show has changed."""
    store, client, sb = archive[1], archive[2], archive[4]
    created = client.interactions.create(model="gemini-2.5-flash", input="Research cricket history.", background=True)
    store.flush()
    before = get(base, f"/conversations/{created.id}").text
    assert re.search(r'class="status s-(in_progress|queued)"', before) and "You said" not in before
    sb.settle()  # the background work finishes now
    assert client.interactions.get(created.id).status == "completed"
    store.flush()
    after = get(base, f"/conversations/{created.id}").text
    assert 'class="status s-completed"' in after and "You said: Research cricket history." in after


@pytest.mark.parametrize("text,link", [
    ("[ok](https://example.com/a?b=1&c=2)", '<a href="https://example.com/a?b=1&amp;c=2" rel="noopener noreferrer nofollow">ok</a>'),
    ("[mail](mailto:a@example.com)", '<a href="mailto:a@example.com" rel="noopener noreferrer nofollow">mail</a>'),
    ("[x](javascript:alert(1))", None), ("[x](JaVaScRiPt:alert(1))", None), ("[x](data:text/html,hi)", None),
    ("[x](ftp://example.com/f)", None), ("[x](/api/stats)", None), ("<a href=\"https://e.com\">raw</a>", None),
    ("![pixel](https://tracker.example/p.png)", "!<a href=\"https://tracker.example/p.png\""),  # a link, never fetched
])
def test_model_markdown_keeps_only_web_and_mail_links(text, link):
    from convostore.serve.rich_text import markdown

    html = str(markdown(text))
    assert "<img" not in html
    if link is None:
        assert "<a " not in html and "<img" not in html, html
    else:
        assert link in html


def test_the_store_reads_serve_relies_on(archive, ids):
    """Store.tree_nodes, conversation, media, chain(raw=False) and usage(conversations=, by_day=, since=)."""
    from datetime import datetime, timedelta, timezone

    store = archive[1]
    nodes = store.tree_nodes(ids["root"])
    assert {n.id for n in nodes} >= {ids["root"], ids["t2"], ids["t3"], ids["alt"]}
    assert nodes[0].id == ids["root"] and nodes[0].parent_id is None and nodes[0].input_text == "Hello, my name is Ada."
    summary = store.conversation(ids["root"])
    assert summary.id == ids["root"] and summary.turns == len(nodes)
    assert store.conversation(ids["t2"]) is None  # conversations are named by their root
    full, light = store.chain(ids["t3"]), store.chain(ids["t3"], raw=False)
    assert [r.id for r in light] == [r.id for r in full] == [ids["root"], ids["t2"], ids["t3"]]
    assert all(r.request_json is None and r.response_json is None for r in light)
    assert [(r.input_steps, r.output_steps, r.status) for r in light] == [(r.input_steps, r.output_steps, r.status) for r in full]
    digest = next(iter(wire.media_refs(orjson.loads(store.get(ids["image"]).input_steps_json))))
    mime, data = store.media(digest)
    assert mime == "image/png" and data.startswith(b"\x89PNG")
    assert store.media("0" * 64) is None
    per = store.usage(conversations=[ids["root"], ids["call"]])
    assert {u["conversation"] for u in per} == {ids["root"], ids["call"]}
    assert sum(u["calls"] for u in per if u["conversation"] == ids["root"]) == len([n for n in nodes if n.status == "completed"])
    assert store.usage(conversations=[]) == []
    now = datetime.now(timezone.utc)
    daily = store.usage(by_day=True, since=now - timedelta(days=1))
    assert daily and {u["day"] for u in daily} <= {now.strftime("%Y-%m-%d"), (now - timedelta(days=1)).strftime("%Y-%m-%d")}
    assert store.usage(by_day=True, since=datetime.now(timezone.utc) + timedelta(days=1)) == []
    assert sum(u["total"] for u in daily) == sum(u["total"] for u in store.usage())
