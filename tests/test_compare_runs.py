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


# --- exact verdicts and totals over an archive whose every number is known -----------------


def _line(iid, *, conv, parent=None, link="root", model=SOURCE, question="q", answer=None, status="completed",
          run=None, source=None, latency=None, tokens=(10, 5), labels=None, hop=0, cached=0):
    """One export line, as another convostore (or a hand) would write it."""
    response = None
    if status != "failed":
        response = {"id": iid, "status": status, "model": model, "created": "2026-11-24T12:00:00Z",
                    "steps": [{"type": "model_output", "content": [{"type": "text", "text": answer}]}],
                    "usage": {"total_input_tokens": tokens[0], "total_output_tokens": tokens[1],
                              "total_thought_tokens": 2, "total_cached_tokens": cached}}
    meta = {"conversation_id": conv, "parent_id": parent, "link": link, "context_hash": f"h-{iid}", "status": status,
            "latency_ms": latency, "replay_run_id": run, "source_id": source, "labels": labels, "hop_index": hop,
            "recorded_at": "2026-11-24T12:00:00Z", "error": {"message": "503", "status": 503} if status == "failed" else None}
    return {"convostore": 1, "id": iid, "api_version": "v1", "request": {"model": model, "input": question},
            "response": response, "meta": {k: v for k, v in meta.items() if v is not None}}


QA = [("Hi, my name is Ada.", "Hello Ada, nice to meet you."), ("I like chess.", "Chess is a fine game."),
      ("What is my name?", "Your name is Ada."), ("Bye.", "Goodbye Ada.")]


@pytest.fixture
def known(sqlite_store):
    """Conversation A (4 turns) replayed by run-pro, and conversation B (1 turn) by run-pro and run-x.

    run-pro on A: turn 1 the same words (latency 100); turn 2 a failed attempt, then an answer
    (200); turn 3 an answer then a failed retry, labelled diverged (300); turn 4 never answered.
    Its judge's call on turn 1 is not an answer. On B: one answer in two hops (the last counts).
    run-x (a model with no price) on B: two failed attempts (the last shown).
    """
    import io

    from convostore.archive import import_jsonl

    lines, prev = [], None
    for k, (q, a) in enumerate(QA, 1):
        lines.append(_line(f"a{k}", conv="a1", parent=prev, link="server" if prev else "root", question=q, answer=a,
                           latency=50.0))
        prev = f"a{k}"
    lines.append(_line("b1", conv="b1", question="Hi, my name is Bob.", answer="Hello Bob.", latency=70.001))
    pro, x = "run-pro", "run-x"
    ca, cb = f"replay:{pro}:a4", f"replay:{pro}:b1"
    lines += [
        _line("p1", conv=ca, link="replay", model="gemini-2.5-pro", question=QA[0][0], answer=QA[0][1], run=pro, source="a1", latency=100.0),
        _line("p2f", conv=ca, link="replay", model="gemini-2.5-pro", status="failed", run=pro, source="a2"),
        _line("p2", conv=ca, link="replay", model="gemini-2.5-pro", answer="Chess is a great game.", run=pro, source="a2", latency=200.0),
        _line("p3", conv=ca, link="replay", model="gemini-2.5-pro", answer="Your name is Ada.", run=pro, source="a3",
              latency=300.0, labels={"replay_verdict": "diverged"}),
        _line("p3f", conv=ca, link="replay", model="gemini-2.5-pro", status="failed", run=pro, source="a3"),
        _line("j1", conv="judge:0f0f", link="judge", model="sandbox-judge", answer="0.1 nothing alike", run=pro, source="p1", latency=5.0),
        _line("q1", conv=cb, link="replay", model="gemini-2.5-pro", answer="Hello", run=pro, source="b1", latency=400.0,
              tokens=(20, 1), hop=0, status="requires_continuation"),
        _line("q1b", conv=cb, link="continuation", model="gemini-2.5-pro", answer="Hello Bob.", run=pro, source="b1",
              latency=500.0, tokens=(20, 9), hop=1, cached=4),
        _line("x1", conv=f"replay:{x}:b1", link="replay", model="model-x", status="failed", run=x, source="b1"),
        _line("x2", conv=f"replay:{x}:b1", link="replay", model="model-x", status="failed", run=x, source="b1"),
    ]
    runs = [{"convostore": 1, "kind": "replay_run", "run": {
        "id": rid, "model": model, "mode": "forced", "status": "completed", "created_at": at, "source_head_id": heads[0],
        "settings": {"heads": heads}}} for rid, model, heads, at in
        [(pro, "gemini-2.5-pro", ["a4", "b1"], "2026-11-24T13:00:00Z"), (x, "model-x", ["b1"], "2026-11-25T13:00:00Z")]]
    import_jsonl(sqlite_store, io.BytesIO(b"\n".join(orjson.dumps(line) for line in lines + runs)))
    return sqlite_store


def test_each_answer_gets_its_verdict_and_the_totals_add_up_exactly(known):
    c = compare(known, "run-pro", "run-x")
    conv = c.conversation("a4")
    pro = [t.replays["run-pro"] for t in conv.turns]
    assert [a.status for a in pro] == ["completed", "completed", "diverged", "missing"]
    assert [a.id for a in pro] == ["p1", "p2", "p3", None]  # the answer over a failed attempt, before or after it
    assert [a.similarity for a in pro[:3]] == [1.0, 0.8, 1.0] and pro[3].similarity is None
    assert [a.score for a in pro] == [1.0, 0.8, 1.0, None]  # unjudged: the similarity
    assert [t.original.similarity for t in conv.turns] == [None] * 4 and conv.original_model == SOURCE
    assert conv.title == QA[0][0] and [t.input_text for t in conv.turns] == [q for q, _ in QA]
    bob = c.conversation("b1").turns[0]
    assert (bob.replays["run-pro"].id, bob.replays["run-pro"].text) == ("q1b", "Hello Bob.")  # the last hop
    assert bob.replays["run-x"].status == "failed" and bob.replays["run-x"].similarity is None
    assert bob.replays["run-x"].id == "x2"

    t = c.totals()
    assert {k: t["run-pro"][k] for k in ("conversations", "turns", "completed", "failed", "diverged", "missing")} == {
        "conversations": 2, "turns": 5, "completed": 4, "failed": 0, "diverged": 1, "missing": 1}
    assert {k: t["run-x"][k] for k in ("conversations", "turns", "completed", "failed", "diverged", "missing")} == {
        "conversations": 1, "turns": 1, "completed": 0, "failed": 1, "diverged": 0, "missing": 0}
    assert t["original"]["conversations"] == 2 and t["original"]["turns"] == 5 and t["original"]["completed"] == 5
    assert t["run-pro"]["latency_ms"] == {"mean": 275.0, "median": 250.0, "p95": 470.0}  # 100, 200, 300, 500
    assert t["original"]["latency_ms"] == {"mean": 54.0, "median": 50.0, "p95": 66.001}  # 66.0008, to 3 places
    assert t["run-x"]["latency_ms"] == {"mean": None, "median": None, "p95": None}
    assert t["run-pro"]["tokens"] == {"input": 50, "output": 24, "thought": 8, "cached": 4, "total": 74}
    assert t["run-pro"]["similarity"] == {"mean": 0.95, "lowest": 0.8} and t["run-pro"]["score"] == 0.95
    assert t["run-pro"]["judge"] == {"mean": None, "lowest": None}
    assert t["run-pro"]["mean_length"] == round(sum(len(a) for a in ("Hello Ada, nice to meet you.", "Chess is a great game.",
                                                                    "Your name is Ada.", "Hello Bob.")) / 5, 1)
    pro_price = load_prices().price("gemini-2.5-pro").base
    assert t["run-pro"]["cost_usd"] == pytest.approx((46 * pro_price.input + 4 * pro_price.cached_input + 24 * pro_price.output
                                                      + 8 * pro_price.thought) / 1e6)
    assert t["run-x"]["cost_usd"] == 0.0 and t["run-x"]["cost_unknown_models"] == []  # a failed turn costs nothing
    assert t["original"]["cost_usd"] == pytest.approx(
        load_prices().cost(SOURCE, input_tokens=50, output_tokens=25, thought_tokens=10, cached_tokens=0))

    # Worst first: by lost (failed or missing) turns in any run, then diverged ones, then the lowest score.
    assert [s.head_id for s in c.summaries] == ["a4", "b1"]  # both lost one turn; a4 also diverged
    assert [s.badness() for s in c.summaries] == [(-1, -1, 0.8), (-1, 0, 1.0)]
    rows = {s.head_id: s.to_dict() for s in c.summaries}
    assert rows["a4"]["runs"]["run-pro"] == {"completed": 3, "failed": 0, "diverged": 1, "missing": 1, "score": 0.933,
                                            "lowest": 0.8, "similarity": 0.933, "judge": None, "mean_latency_ms": 200.0,
                                            "cost_usd": pytest.approx((30 * pro_price.input + 15 * pro_price.output
                                                                       + 6 * pro_price.thought) / 1e6)}
    assert rows["b1"]["runs"]["run-x"]["failed"] == 1 and rows["b1"]["turns"] == 1 and rows["a4"]["turns"] == 4


def test_the_gate_holds_at_each_threshold_and_misses_just_past_it(known):
    c = compare(known, "run-pro")
    assert gate(c, fail_under=0.95, max_failed=1, max_p95_latency_ms=470.0, max_cost_usd=1.0) == []
    missed = gate(c, fail_under=0.951, max_failed=0, max_p95_latency_ms=469.9, max_cost_usd=0.0)
    assert missed == [
        "run-pro (gemini-2.5-pro): score 0.95 is under 0.951",
        "run-pro (gemini-2.5-pro): 1 failed turns, more than 0",
        "run-pro (gemini-2.5-pro): p95 latency 470 ms is over 469.9 ms",
        f"run-pro (gemini-2.5-pro): cost ${c.totals()['run-pro']['cost_usd']:.4f} is over $0.0",
    ]
    x = compare(known, "run-x")
    assert gate(x, fail_under=0.0, max_p95_latency_ms=1e9) == [
        "run-x (model-x): score none is under 0.0", "run-x (model-x): p95 latency none ms is over 1000000000.0 ms"]
    assert gate(x, max_failed=1, max_cost_usd=0.0) == []


def test_runs_are_found_from_any_interaction_they_touched(known):
    assert [r.id for r in compare(known, "a2").runs] == ["run-pro"]  # a source turn: the runs that replayed it
    assert [r.id for r in compare(known, "b1").runs] == ["run-pro", "run-x"]  # oldest first
    c = compare(known, "p2")  # a replayed turn: its run, its conversation in focus
    assert [r.id for r in c.runs] == ["run-pro"] and c.head_id == "a4" and len(c.turns) == 4
    assert compare(known, "run-x", "b1").head_id == "b1" and [r.id for r in compare(known, "run-x", "b1").runs] == ["run-x"]
    c = compare(known, "run-pro", conversation="a1")
    assert c.head_id == "a4" and [s.head_id for s in c.summaries] != [] and len(c.turns) == 4
    assert compare(known, "run-pro").turns == [] and compare(known, "run-x").head_id == "b1"
    with pytest.raises(ConvostoreError, match="a1 is not in the compared runs"):
        compare(known, "run-x", conversation="a1")
    with pytest.raises(ConvostoreError, match="nothing to compare"):
        compare(known)
    with pytest.raises(ConvostoreError, match="no replay runs matched"):
        compare(known, since=datetime(2030, 1, 1, tzinfo=timezone.utc))
    picked = compare(known, since=datetime(2026, 11, 25, tzinfo=timezone.utc))
    assert [r.id for r in picked.runs] == ["run-x"]
    assert [r.id for r in compare(known, source_model=SOURCE).runs] == ["run-pro", "run-x"]
    assert [r.id for r in compare(known, source_model=SOURCE, since=datetime(2026, 11, 25, tzinfo=timezone.utc)).runs] == ["run-x"]
    with pytest.raises(ConvostoreError, match="no replay runs matched"):
        compare(known, source_model="gemini-1.0")


class _HalfMarks:
    """A grader of one's own (the ``Scorer`` protocol ``compare(judge=...)`` takes): half marks to every answer."""

    model = "half-marks"
    requests = 0
    cached = 0

    def grade(self, items):
        self.requests += len(items)
        return [(0.5, f"graded {replayed!r}") for _, _, replayed, _, _ in items]


def test_a_judges_grades_replace_the_similarity_as_the_score(known):
    judge = _HalfMarks()
    c = compare(known, "run-pro", "run-x", judge=judge)
    assert judge.requests == 4  # answered turns with text: not the missing one, not the failed ones
    conv = c.conversation("a4")
    pro = [t.replays["run-pro"] for t in conv.turns]
    assert [a.score for a in pro] == [0.5, 0.5, 0.5, None] and [a.similarity for a in pro[:3]] == [1.0, 0.8, 1.0]
    assert pro[1].judge_reason == "graded 'Chess is a great game.'"
    t = c.totals()["run-pro"]
    assert t["judge"] == {"mean": 0.5, "lowest": 0.5} and t["score"] == 0.5 and t["similarity"]["mean"] == 0.95
    assert gate(c, fail_under=0.5) == ["run-x (model-x): score none is under 0.5"]  # nothing answered, nothing judged
    assert gate(c, fail_under=0.6)[0] == "run-pro (gemini-2.5-pro): score 0.5 is under 0.6"
    assert c.to_dict()["judge"] == "half-marks"
