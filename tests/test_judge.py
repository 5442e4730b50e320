"""`compare --judge`: a model grades each replayed answer, every call archived, and never asked twice."""

from __future__ import annotations

import orjson
from click.testing import CliRunner

from convostore.cli import cli
from convostore.comparison import compare
from convostore.judging import SANDBOX_JUDGE, Judge
from convostore.replaying import replay
from convostore.sandbox.models import judge as sandbox_judge

from .synthetic_runs import conversations



def _runs(client, store):
    rc, heads = conversations(client, store)
    run = replay(store, heads, model="gemini-2.5-pro", client=rc)
    return rc, heads, run


def test_the_judge_grades_each_answer_archives_its_calls_and_is_asked_once(client, store, sandbox):
    rc, heads, run = _runs(client, store)
    sent = len(sandbox.requests)
    judge = Judge(store, SANDBOX_JUDGE, client=rc)
    c = compare(store, run.id, judge=judge)
    assert judge.requests == 4 and len(sandbox.requests) - sent == 4
    t = c.totals()[run.id]
    assert 0 < t["judge"]["lowest"] <= t["judge"]["mean"] <= 1 and t["score"] == t["judge"]["mean"]
    conv = next(c.conversations())
    for turn in conv.turns:
        a = turn.replays[run.id]
        assert a.judge_score is not None and "words in the same order" in a.judge_reason
        assert a.score == a.judge_score  # a judged answer's score is the judge's
    calls = [r for r in store.list(replay_run_id=run.id) if r.link == "judge"]
    assert len(calls) == 4 and all(r.model == SANDBOX_JUDGE and r.labels["judge"] == SANDBOX_JUDGE for r in calls)
    assert not any(r.conversation_id.startswith("judge:") for r in store.conversations())  # not replayable sources

    sent = len(sandbox.requests)
    again = Judge(store, SANDBOX_JUDGE, client=rc)
    c2 = compare(store, run.id, judge=again)
    assert again.requests == 0 and len(sandbox.requests) == sent  # the archive is the cache
    assert c2.totals()[run.id]["judge"] == t["judge"]
    other = Judge(store, SANDBOX_JUDGE, client=rc, rubric="Only names matter.")
    compare(store, run.id, judge=other)
    assert other.requests == 4  # another rubric is another question


def test_compare_judge_from_the_cli_gates_on_the_judge_score(client, sqlite_store, sandbox, monkeypatch, tmp_path):
    _, _, run = _runs(client, sqlite_store)
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", sandbox.base_url)
    rubric = tmp_path / "rubric.txt"
    rubric.write_text("Grade names and facts only.")
    runner = CliRunner()
    db = ["--db", sqlite_store.path]
    res = runner.invoke(cli, [*db, "compare", run.id, "--judge", SANDBOX_JUDGE, "--rubric", str(rubric), "--format", "json",
                              "--fail-under", "0.99"])
    assert res.exit_code == 1 and "judge sandbox-judge: 4 requests sent" in res.stderr and "is under 0.99" in res.stderr
    data = orjson.loads(res.stdout)
    assert data["judge"] == SANDBOX_JUDGE and data["totals"][run.id]["judge"]["mean"] is not None
    res = runner.invoke(cli, [*db, "compare", run.id, "--judge", SANDBOX_JUDGE, "--rubric", str(rubric), "--fail-under", "0.1"])
    assert res.exit_code == 0 and "4 requests" not in res.stderr and "0 requests sent" in res.stderr
    res = runner.invoke(cli, [*db, "compare", run.id, "--rubric", str(rubric)])
    assert res.exit_code == 2 and "--rubric needs --judge" in res.output


def test_the_sandbox_judge_is_deterministic():
    prompt = "<original>\nYour name is Ada.\n</original>\n<replay>\nYour name is Grace.\n</replay>"
    assert sandbox_judge(prompt) == sandbox_judge(prompt)
    assert orjson.loads(sandbox_judge(prompt))["score"] == 0.75
    assert orjson.loads(sandbox_judge(prompt.replace("Grace", "Ada")))["score"] == 1.0


def test_an_archive_with_the_judges_calls_exports_and_imports_whole(client, sqlite_store, sandbox, tmp_path):
    """The judge's calls are interactions like any other: a JSONL export of them imports
    again (all or nothing), and the imported archive still answers as the judge's cache."""
    import io

    from convostore.archive import export_jsonl, import_jsonl
    from convostore.store import Store

    rc, heads, run = _runs(client, sqlite_store)
    compare(sqlite_store, run.id, judge=Judge(sqlite_store, SANDBOX_JUDGE, client=rc))
    out = io.BytesIO()
    export_jsonl(sqlite_store, out)
    copy = Store(tmp_path / "copy.db")
    result = import_jsonl(copy, io.BytesIO(out.getvalue()))
    assert result.added == len(list(sqlite_store.list())) and result.runs == 1
    assert sorted(r.id for r in copy.list(replay_run_id=run.id) if r.link == "judge") == sorted(
        r.id for r in sqlite_store.list(replay_run_id=run.id) if r.link == "judge") != []
    cached = Judge(copy, SANDBOX_JUDGE, client=rc)
    compare(copy, run.id, judge=cached)
    assert cached.requests == 0
    copy.close()
