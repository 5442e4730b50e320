"""Model and user text is data, never markup: the reports escape it.

A conversation whose user text holds a ``<script>`` (the sandbox's models echo it back,
so the original and the replayed answers hold it too) is compared from the command
line; the ``<script>`` must appear only escaped in the HTML report and in the Markdown.
"""

from __future__ import annotations

import html
import io
import re

import orjson
import pytest
from click.testing import CliRunner

import convostore
from convostore.cli import cli

PAYLOAD = '<script>alert("owned")</script> & <img src=x onerror=alert(1)> a|b'
SOURCE = "gemini-2.5-flash"
TARGET = "gemini-2.5-pro"


@pytest.fixture
def compared(client, sqlite_store, sandbox, monkeypatch):
    """The CLI and the conversation id, after one replay of a conversation carrying PAYLOAD."""
    rc = convostore.record(client, store=sqlite_store)
    t1 = rc.interactions.create(model=SOURCE, input="Hi, my name is Ada.")
    t2 = rc.interactions.create(model=SOURCE, input=f"Please repeat {PAYLOAD}", previous_interaction_id=t1.id)
    assert "<script>" in sqlite_store.get(t2.id).output_text  # the model echoed it
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", sandbox.base_url)
    runner = CliRunner()
    db = ["--db", sqlite_store.path]
    res = runner.invoke(cli, [*db, "replay", t2.id, "--model", TARGET])
    assert res.exit_code == 0, res.output
    run = sqlite_store.list_runs()[0]
    replayed = next(r for r in sqlite_store.list(replay_run_id=run.id) if r.source_id == t2.id)
    assert "<script>" in replayed.output_text  # the replayed answer holds it too

    def invoke(fmt: str) -> str:
        res = runner.invoke(cli, [*db, "compare", t2.id, "--format", fmt])
        assert res.exit_code == 0, res.output
        return res.output

    return invoke


def test_html_report_escapes_original_and_replayed_text(compared):
    page = compared("html")
    assert "<script" not in page.lower() and "<img" not in page.lower()
    # Escaped in the user cell, the original answer and the replayed answer (word diff).
    assert page.count("&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt;") >= 3
    cells = re.findall(r'<td class="(?:user|completed)">(.*?)</td>', page, re.S)
    assert sum("&lt;script&gt;" in c for c in cells) == 3  # turn 2: user, original, replay


def test_markdown_output_escapes_html_in_every_cell(compared):
    md = compared("markdown")
    assert "<script" not in md.lower() and "<img" not in md.lower()
    row = next(line for line in md.splitlines() if line.startswith("| 2 |"))
    assert row.count("&lt;script&gt;") == 3  # user, original, replay
    cells = re.split(r"(?<!\\)\|", row)[1:-1]
    assert len(cells) == 4 and all(c.count("a\\|b") == 1 for c in cells[1:])  # a pipe in the text splits no cell


def test_html_report_highlights_only_the_words_that_differ(compared):
    page = compared("html")
    row = re.search(r'<tr class="turn" data-turn="1">(.*?)</tr>', page, re.S).group(1)
    cells = [c.split('<span class="meta">')[0] for c in re.findall(r'<td class="completed">(.*?)</td>', row, re.S)]
    original, replayed = cells
    assert "<ins>" not in original  # the original is the reference
    marked = " ".join(re.findall(r"<ins>(.*?)</ins>", replayed))
    plain = re.sub(r"<ins>.*?</ins>", " ", replayed)
    assert marked  # the two models word their answers differently (see the sandbox's models)
    assert "Ada." in plain and "Ada." not in marked  # what both said stays unmarked
    assert all(word not in original.split() for word in marked.split())  # every marked word is new


def test_html_report_keeps_every_word_of_an_answer_that_leaves_words_out(client, sqlite_store, tmp_path):
    """A replayed answer that drops words of the original (a pure deletion in the word
    diff) still shows all of its own words, in order, after the gap."""
    from convostore import replay
    from convostore.archive import export_jsonl, import_jsonl
    from convostore.store import Store

    rc = convostore.record(client, store=sqlite_store)
    t1 = rc.interactions.create(model=SOURCE, input="Hi, my name is Ada.")
    run = replay(sqlite_store, t1.id, model=TARGET, client=rc)
    original = sqlite_store.get(t1.id).output_text.split()
    shorter = original[:2] + original[4:]  # the same answer without its third and fourth words
    buf = io.BytesIO()
    export_jsonl(sqlite_store, buf)
    lines = []
    for raw in buf.getvalue().splitlines():
        line = orjson.loads(raw)
        if line.get("meta", {}).get("replay_run_id") == run.id:
            line["response"]["steps"] = [{"type": "model_output", "content": [{"type": "text", "text": " ".join(shorter)}]}]
        lines.append(orjson.dumps(line))
    copy = Store(tmp_path / "copy.db")
    import_jsonl(copy, io.BytesIO(b"\n".join(lines) + b"\n"))
    copy.close()
    res = CliRunner().invoke(cli, ["--db", str(tmp_path / "copy.db"), "compare", t1.id, "--format", "html"])
    assert res.exit_code == 0, res.output
    row = re.search(r'<tr class="turn" data-turn="1">(.*?)</tr>', res.output, re.S).group(1)
    replayed = re.findall(r'<td class="completed">(.*?)</td>', row, re.S)[1].split('<span class="meta">')[0]
    assert re.sub(r"</?ins>", "", replayed).split() == [html.escape(w) for w in shorter]
