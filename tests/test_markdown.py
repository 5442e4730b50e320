"""Markdown output shows stored text as text: checked by rendering it with a CommonMark parser."""

from __future__ import annotations

import io
import re

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st

import convostore
from convostore import markdown
from convostore.archive import export_markdown, import_jsonl
from convostore.cli import cli
from convostore.report import render
from tests.fixtures_sandbox import make_client

markdown_it = pytest.importorskip("markdown_it")

HOSTILE = "## Heading\n\n- item\n1. one\n    indented code\n<script>alert(1)</script>\r\n| a | b |\n===\n```py\nx\n```\n> quote\n**bold** _em_ [link](http://x) ![img](http://y) `tick` ~~del~~ &amp; \\"


def _md() -> "markdown_it.MarkdownIt":
    return markdown_it.MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def _text_of(tokens) -> str:
    out = []
    for tok in tokens:
        if tok.children:
            out.append(_text_of(tok.children))
        elif tok.type in ("text", "code_inline"):
            out.append(tok.content)
    return "".join(out)


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text.replace("\xa0", " "))


texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=200)


@settings(max_examples=300, deadline=None)
@given(text=texts)
@example(text="Sure.\n## Heading\n# Title\n> quote\n- item\n1. one")  # each line could open a block
def test_a_block_renders_as_one_paragraph_of_exactly_its_text(text):
    tokens = _md().parse("**user:** " + markdown.block(text))
    assert [t.type for t in tokens] == ["paragraph_open", "inline", "paragraph_close"]
    kinds = {c.type for c in tokens[1].children}
    assert kinds <= {"text", "softbreak", "hardbreak", "strong_open", "strong_close"}, kinds
    assert _squeeze(_text_of(tokens[1].children)) == _squeeze("user: " + text)


@settings(max_examples=300, deadline=None)
@given(cells=st.lists(texts, min_size=1, max_size=4))
def test_table_cells_stay_in_their_column(cells):
    row = "| " + " | ".join(markdown.cell(c) for c in cells) + " |"
    table = row + "\n|" + "---|" * len(cells) + "\n" + row + "\n"
    tokens = _md().parse(table)
    assert tokens[0].type == "table_open"
    heads = [i for i, t in enumerate(tokens) if t.type == "th_open"]
    assert len(heads) == len(cells)
    for i, cell in zip(heads, cells):
        inline = tokens[i + 1]
        assert {c.type for c in inline.children} <= {"text", "html_inline"}
        assert all(c.content == "<br>" for c in inline.children if c.type == "html_inline")
        assert _squeeze(_text_of([inline])) == _squeeze(cell)


@given(text=texts)
def test_code_spans_hold_any_text(text):
    tokens = _md().parse(markdown.code(text))
    if text.strip():
        children = tokens[1].children
        assert [c.type for c in children] == ["code_inline"]
        assert _squeeze(children[0].content) == _squeeze(text)


def _line(iid: str, user: str, model_text: str, model: str = "gemini-2.5-flash") -> bytes:
    return orjson.dumps({
        "convostore": 1, "id": iid, "api_version": "v1",
        "request": {"model": model, "input": user},
        "response": {"id": iid, "status": "completed", "model": model,
                     "steps": [{"type": "model_output", "content": [{"type": "text", "text": model_text}]}]},
        "meta": {"conversation_id": iid, "link": "root", "recorded_at": "2026-11-24T12:00:00+00:00"},
    })


def test_export_markdown_turns_no_stored_text_into_markup(tmp_path):
    store = convostore.Store(tmp_path / "md.db")
    import_jsonl(store, io.BytesIO(_line("v1_hostile", "## not a heading either\n<b>raw</b>", HOSTILE) + b"\n"))
    out = io.StringIO()
    assert export_markdown(store, out) == 1
    store.close()
    html = _md().render(out.getvalue())
    # the export's own headings and status line only
    assert (html.count("<h2>"), html.count("<h3>"), html.count("<em>")) == (1, 1, 1)
    for tag in ("<script", "<b>", "<ul", "<ol", "<pre", "<blockquote", "<table", "<a ", "<img", "<del", "<h1"):
        assert tag not in html, (tag, html)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    res = CliRunner().invoke(cli, ["--db", str(tmp_path / "md.db"), "export", "--format", "markdown"])
    assert res.exit_code == 0 and res.stdout == out.getvalue()


def test_compare_markdown_escapes_cells_and_model_names(sandbox, tmp_path):
    store = convostore.Store(tmp_path / "cmp.db")
    client = convostore.record(make_client(sandbox.base_url), store=store)
    head = client.interactions.create(model="gemini-2.5-flash", input="line one\rline two | pipe <i>x</i>\n## head")
    convostore.replay(store, head.id, model="evil|<b>model</b>\r", client=client)  # the sandbox answers any model
    md = render(convostore.compare(store, head.id), format="markdown")
    client.close()
    store.close()
    tokens = _md().parse(md)
    tables = [i for i, t in enumerate(tokens) if t.type == "table_open"]
    assert len(tables) == 2
    header_end = next(i for i, t in enumerate(tokens) if t.type == "thead_close")
    assert sum(t.type == "th_open" for t in tokens[:header_end]) == 4
    assert sum(t.type == "td_open" for t in tokens[tables[0]:tables[1]]) == 4
    header = _text_of(tokens[tables[0]:header_end])
    assert "evil|<b>model</b>" in header
    html = _md().render(md)
    for tag in ("<b>", "<i>", "<h2>head"):
        assert tag not in html, html
    assert "\r" not in md
