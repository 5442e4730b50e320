"""`compare` over whole runs: every conversation, totals, worst first, cost, formats, gate."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

import convostore
from convostore.cli import cli
from convostore.comparison import compare, gate
from convostore.errors import ConvostoreError
from convostore.prices import load_prices
from convostore.replaying import replay
from convostore.report import md_cell, render, text_table

from .synthetic_runs import conversations

SOURCE = "gemini-2.5-flash"
NASTY = "Ada | <script>alert(1)</script> & \\| \r\n`x`"


def _seed(client, store):
    return conversations(client, store, ("Ada", "Grace", "Linus"), intro=" I like chess.")


@pytest.fixture
def runs(client, sqlite_store, sandbox):
    """Three conversations replayed twice; the second run (in reverse order) fails the last one's first turn."""
    rc, heads = _seed(client, sqlite_store)
    a = replay(sqlite_store, heads, model="gemini-2.5-pro", client=rc, concurrency=1)
    sandbox.fail(400, 1)
    b = replay(sqlite_store, heads[::-1], model="model-without-a-price", client=rc, concurrency=1)
    return sqlite_store, rc, heads, a, b


def test_a_run_comparison_covers_every_conversation_worst_first(runs):
    store, _, heads, a, b = runs
    c = compare(store, a.id, b.id)
    totals = c.totals()
    assert totals[a.id]["conversations"] == 3 and totals[a.id]["turns"] == 6 and totals[a.id]["completed"] == 6
    assert totals[b.id]["failed"] == 1 and totals[b.id]["completed"] == 5
    assert totals["original"]["turns"] == 6
    assert sorted(s.head_id for s in c.summaries) == sorted(heads)
    assert c.summaries[0].head_id == heads[2]  # the conversation with the failed turn comes first
    assert [len(conv.turns) for conv in c.conversations()] == [2, 2, 2]
    lat = totals[a.id]["latency_ms"]
    assert lat["mean"] > 0 and lat["median"] > 0 and lat["p95"] >= lat["median"]
    assert 0 < totals[a.id]["similarity"]["lowest"] <= totals[a.id]["similarity"]["mean"] <= 1
    assert totals[a.id]["tokens"]["input"] > 0 and totals[a.id]["tokens"]["output"] > 0


def test_an_interaction_of_any_conversation_finds_its_runs(runs):
    store, _, heads, a, b = runs
    c = compare(store, heads[2])  # not the runs' first conversation
    assert {r.id for r in c.runs} == {a.id, b.id}
    assert c.head_id == heads[2] and len(c.turns) == 2
    assert all(t.replays[a.id].status == "completed" for t in c.turns)
    c = compare(store, heads[2], a.id)  # ID RUN: that conversation in that run only
    assert [r.id for r in c.runs] == [a.id] and c.head_id == heads[2]


def test_runs_are_picked_by_source_model_and_date(runs):
    store, _, _, a, b = runs
    c = compare(store, source_model=SOURCE, since=datetime.now(timezone.utc) - timedelta(hours=1))
    assert [r.id for r in c.runs] == [a.id, b.id]
    with pytest.raises(ConvostoreError, match="no replay runs"):
        compare(store, source_model="gemini-0")
    with pytest.raises(ConvostoreError, match="no replay runs"):
        compare(store, since=datetime.now(timezone.utc) + timedelta(days=1))


def test_one_conversation_turn_by_turn_in_a_run_comparison(runs):
    store, _, heads, a, _ = runs
    c = compare(store, a.id, conversation=heads[1])
    assert c.focus is not None and c.head_id == heads[1]
    table = render(c, "table", width=120)
    assert "user: What is my name?" in table and "Grace" in table
    data = orjson.loads(c.to_json())
    assert data["conversation"]["head_id"] == heads[1] and len(data["conversation"]["turns"]) == 2
    assert render(compare(store, a.id), "json").count('"turns": [') == 0  # no turn texts without a focus


def test_json_is_a_string_of_plain_values_in_the_documented_shape(runs):
    store, _, _, a, b = runs
    c = compare(store, a.id, b.id)
    text = c.to_json()
    assert isinstance(text, str) and orjson.loads(text) == c.to_dict()
    d = c.to_dict()
    assert set(d) == {"version", "runs", "judge", "prices", "totals", "conversations", "conversation"}
    assert set(d["totals"][a.id]) >= {"conversations", "turns", "completed", "failed", "diverged", "latency_ms", "tokens",
                                      "cost_usd", "similarity", "judge", "score"}
    assert set(d["conversations"][0]["runs"][a.id]) >= {"completed", "failed", "diverged", "score", "lowest", "cost_usd"}


def test_cost_from_the_price_table_and_unknown_never_guessed(runs, tmp_path, monkeypatch):
    store, _, _, a, b = runs
    c = compare(store, a.id, b.id)
    t = c.totals()
    pro = load_prices().price("gemini-2.5-pro").base
    expected = (t[a.id]["tokens"]["input"] * pro.input + t[a.id]["tokens"]["output"] * pro.output
                + t[a.id]["tokens"]["thought"] * pro.thought) / 1e6
    assert t[a.id]["cost_usd"] == pytest.approx(expected)
    assert t[b.id]["cost_usd"] is None and t[b.id]["cost_unknown_models"] == ["model-without-a-price"]
    assert "cost unknown" in render(c, "table", width=200)
    prices = tmp_path / "prices.json"
    prices.write_text('{"taken": "2099-01-01", "models": {"model-without-a-price": {"input": 1, "output": 2}}}')
    monkeypatch.setenv("CONVOSTORE_PRICES", str(prices))
    t = compare(store, b.id).totals()[b.id]
    assert t["cost_usd"] == pytest.approx((t["tokens"]["input"] + 2 * t["tokens"]["output"] + 2 * t["tokens"]["thought"]) / 1e6)
    prices.write_text('{"models": {"x": {"input": "cheap"}}}')
    res = CliRunner().invoke(cli, ["--db", store.path, "compare", b.id])
    assert res.exit_code == 1 and "must be a number" in res.stderr and "Traceback" not in res.output


def test_the_gate_exits_1_naming_each_missed_threshold(runs):
    store, _, _, a, b = runs
    db = ["--db", store.path]
    runner = CliRunner()
    res = runner.invoke(cli, [*db, "compare", a.id, "--fail-under", "0.1", "--max-failed", "0", "--max-cost", "1"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, [*db, "compare", a.id, b.id, "--max-failed", "0", "--format", "json"])
    assert res.exit_code == 1
    assert orjson.loads(res.stdout)["version"] == 1  # the report still printed in full
    assert re.search(rf"gate: {b.id} .*1 failed turns, more than 0", res.stderr) and a.id not in res.stderr
    res = runner.invoke(cli, [*db, "compare", a.id, "--fail-under", "0.99", "--max-p95-latency", "0.001"])
    assert res.exit_code == 1 and "is under 0.99" in res.stderr and "p95 latency" in res.stderr
    c = compare(store, b.id)
    assert gate(c, max_cost_usd=100)[0].endswith("cannot prove it is under $100")


def test_table_fits_the_terminal_and_marks_cuts(runs):
    store, _, _, a, b = runs
    res = CliRunner().invoke(cli, ["--db", store.path, "compare", a.id, b.id], env={"COLUMNS": "72"})
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert max(len(x) for x in lines) <= 72 and any("…" in x for x in lines)


def test_every_stored_text_is_escaped_in_markdown_and_html(client, sqlite_store, tmp_path):
    rc = convostore.record(client, store=sqlite_store)
    head = rc.interactions.create(model=SOURCE, input=f"Hi, my name is {NASTY}").id
    run = replay(sqlite_store, head, model="gemini-2.5-pro|<b>", client=rc)
    c = compare(sqlite_store, run.id)
    md = render(c, "markdown")
    def columns(line: str) -> int:
        return len(re.findall(r"(?<!\\)\|", line.replace("\\\\", "")))

    table = [line for line in md.split("## Totals")[0].splitlines() if line.startswith("|")]
    assert len(table) == 3 and {columns(line) for line in table} == {columns(table[0])}  # no stray pipe or break
    assert "<script>" not in md and "\r" not in md and "gemini-2.5-pro\\|&lt;b&gt;" in md
    page = render(c, "html")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>" not in page and not re.search(r"(src|href)=\"(https?:)?//", page)


@given(st.text(alphabet=st.one_of(st.characters(), st.sampled_from("|\\\r\n<>&"))))
def test_a_markdown_cell_never_breaks_its_row(text):
    cell = md_cell(text)
    assert "\n" not in cell and "\r" not in cell and "<" not in cell.replace("<br>", "")
    assert not re.search(r"(?<!\\)(\\\\)*\|", cell)  # every pipe is escaped


@given(st.lists(st.lists(st.text(max_size=60), min_size=3, max_size=3), max_size=5), st.integers(40, 160))
def test_a_text_table_never_exceeds_its_width(rows, width):
    out = text_table(["a", "bb", "ccc"], rows, width=width)
    assert all(len(line) <= width for line in out.splitlines())


@given(st.lists(st.sampled_from("a b c d e f the cat sat".split()), max_size=40),
       st.lists(st.sampled_from("a b c d e f the cat sat".split()), max_size=40))
def test_similarity_is_the_longest_common_word_run_ratio(x, y):
    import difflib

    from convostore.comparison import similarity

    a, b = " ".join(x), " ".join(y)
    s = similarity(a, b)
    assert s == similarity(b, a) and 0.0 <= s <= 1.0
    assert (s == 1.0) == (x == y)
    # An exact LCS: never below difflib's greedy blocks, and equal to a plain dynamic programme.
    assert s >= round(difflib.SequenceMatcher(None, x, y, autojunk=False).ratio(), 3)
    table = [[0] * (len(y) + 1) for _ in range(len(x) + 1)]
    for i in range(len(x)):
        for j in range(len(y)):
            table[i + 1][j + 1] = table[i][j] + 1 if x[i] == y[j] else max(table[i][j + 1], table[i + 1][j])
    assert s == (1.0 if not x and not y else round(2 * table[-1][-1] / (len(x) + len(y)), 3))


def test_stats_and_runs_show_cost_and_say_when_unknown(runs):
    store, _, _, a, b = runs
    from convostore.comparison import compare as compare_

    runner = CliRunner()
    db = ["--db", store.path]
    res = runner.invoke(cli, [*db, "stats", "--json"])
    cost = orjson.loads(res.stdout)["cost"]
    by_model = {m["model"]: m for m in cost["models"]}
    assert by_model["model-without-a-price"]["cost_usd"] is None and cost["cost_usd"] is None
    assert by_model["gemini-2.5-pro"]["cost_usd"] == pytest.approx(compare_(store, a.id).totals()[a.id]["cost_usd"])
    res = runner.invoke(cli, [*db, "stats"])
    assert "cost: cost unknown (" in res.stdout and "gemini-2.5-pro: $0.0" in res.stdout
    res = runner.invoke(cli, [*db, "runs", "--json"])
    costs = {r["id"]: r["cost_usd"] for r in map(orjson.loads, res.stdout.splitlines())}
    assert costs[b.id] is None and costs[a.id] == pytest.approx(by_model["gemini-2.5-pro"]["cost_usd"])
