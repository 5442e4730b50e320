"""A replay run's life: created only when it can send, gating CI on failures, listed for people."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

import convostore
import convostore.errors
from convostore.cli import cli
from convostore.errors import MissingAPIKeyError
from convostore.replaying import list_runs, replay

from .synthetic_runs import conversations

SOURCE = "gemini-2.5-flash"
TARGET = "gemini-2.5-pro"


_seed = conversations


@pytest.fixture
def cli_env(sqlite_store, sandbox, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", sandbox.base_url)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    return ["--db", sqlite_store.path]


def test_replay_exits_0_when_every_turn_answered_and_1_when_one_failed(client, sqlite_store, sandbox, cli_env):
    _, heads = _seed(client, sqlite_store)
    runner = CliRunner()
    res = runner.invoke(cli, [*cli_env, "replay", heads[0], "-m", TARGET, "-j", "1"])
    assert res.exit_code == 0, res.output
    sandbox.fail(400, 1)  # not retried: the first turn fails for good, the run goes on
    res = runner.invoke(cli, [*cli_env, "replay", heads[0], "-m", TARGET, "-j", "1", "--json"])
    assert res.exit_code == 1, res.output
    run = orjson.loads(res.stdout[res.stdout.index("{"):])  # stdout stays JSON; the reason goes to stderr
    assert run["status"] == "completed_with_failures" and run["summary"]["verdicts"] == {"failed": 1, "ok": 1}
    assert "1 turn(s) failed" in res.stderr


def test_a_replay_without_an_api_key_leaves_no_run(client, store, monkeypatch):
    _, heads = _seed(client, store)
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(MissingAPIKeyError):
        replay(store, heads[0], model=TARGET)
    assert list_runs(store) == []


def test_a_replay_without_an_api_key_from_the_cli_is_one_line_and_no_run(client, sqlite_store, monkeypatch):
    _, heads = _seed(client, sqlite_store)
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    res = CliRunner().invoke(cli, ["--db", sqlite_store.path, "replay", heads[0], "-m", TARGET])
    assert res.exit_code == 1 and res.stderr.startswith("Error: no API key") and "Traceback" not in res.output
    assert list_runs(sqlite_store) == []


def test_runs_prints_a_table_and_json_lines(client, sqlite_store, cli_env):
    rc, heads = _seed(client, sqlite_store)
    run = replay(sqlite_store, heads, model=TARGET, client=rc)
    runner = CliRunner()
    res = runner.invoke(cli, [*cli_env, "runs"], env={"COLUMNS": "120"})
    assert res.exit_code == 0, res.output
    header, rule, line = res.output.splitlines()[:3]
    assert header.split() == ["run", "created", "status", "model", "convs", "turns", "ok", "diverged", "failed", "cost"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert line.split()[0] == run.id and "completed" in line and f"{TARGET} (forced)" in line
    assert line.split()[-6:-1] == ["2", "4", "4", "0", "0"] and line.split()[-1].startswith("$0.0")
    assert "{" not in res.output  # no Python dict
    res = runner.invoke(cli, [*cli_env, "runs", "--json"])
    rows = [orjson.loads(x) for x in res.output.splitlines()]
    assert [r["id"] for r in rows] == [run.id] and rows[0]["cost_usd"] > 0
    assert rows[0]["summary"]["verdicts"] == {"ok": 4} and rows[0]["created_at"].startswith("20")


def test_runs_table_fits_a_narrow_terminal_and_marks_what_it_cut(client, sqlite_store, cli_env):
    rc, heads = _seed(client, sqlite_store)
    replay(sqlite_store, heads[0], model="a-very-long-model-name-that-cannot-fit-in-forty-columns", client=rc)
    res = CliRunner().invoke(cli, [*cli_env, "runs"], env={"COLUMNS": "60"})
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert all(len(x) <= 60 for x in lines)
    assert "…" in lines[2]


def test_run_to_json_is_a_string_and_to_dict_plain(client, store):
    rc, heads = _seed(client, store)
    run = replay(store, heads[0], model=TARGET, client=rc)
    assert isinstance(run.to_json(), str)
    assert orjson.loads(run.to_json()) == run.to_dict()
    assert isinstance(run.to_dict()["finished_at"], str)


def test_a_killed_replay_shows_interrupted_and_resume_finishes_it(sqlite_store, monkeypatch):
    """SIGKILL leaves no chance to write a status: the stale heartbeat tells, and --resume continues."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from google import genai
    from google.genai import types

    from convostore.replaying import get_run
    from convostore.sandbox import Sandbox

    monkeypatch.setenv("CONVOSTORE_HEARTBEAT_S", "0.25")
    with Sandbox() as sb:
        rc = convostore.record(genai.Client(api_key="k", http_options=types.HttpOptions(base_url=sb.base_url)), store=sqlite_store)
        prev = None
        for i in range(6):
            kwargs = {"previous_interaction_id": prev} if prev else {}
            prev = rc.interactions.create(model=SOURCE, input=f"turn {i}: my name is Ada", **kwargs).id
        env = dict(os.environ, GEMINI_API_KEY="k", GOOGLE_GEMINI_BASE_URL=sb.base_url)
        db = ["--db", sqlite_store.path]
        sb.hold(after=2)  # two turns answered, the third kept waiting: the run is alive at an exact point
        proc = subprocess.Popen([sys.executable, "-m", "convostore", *db, "replay", prev, "-m", TARGET, "-j", "1"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            run_id = None
            while time.monotonic() < deadline and proc.poll() is None:  # wait on events, not a clock:
                runs = sqlite_store.list_runs()  # two answers, the third held, and a heartbeat written
                run = runs[0] if runs else None  # past the stale window (4 beats): only beats keep it live
                if (run is not None and sb.held and run.heartbeat_at is not None
                        and len(list(sqlite_store.list(replay_run_id=run.id))) >= 2
                        and (run.heartbeat_at - run.created_at).total_seconds() > 4 * 0.25 + 0.3):
                    run_id = run.id
                    break
                time.sleep(0.02)
            assert run_id is not None and get_run(sqlite_store, run_id).status == "running"
            with pytest.raises(convostore.errors.ConvostoreError, match="still running"):
                replay(sqlite_store, resume_run=run_id, client=rc)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            sb.release()
        deadline = time.monotonic() + 30
        while get_run(sqlite_store, run_id).status != "interrupted" and time.monotonic() < deadline:
            time.sleep(0.05)
        runner = CliRunner()
        res = runner.invoke(cli, [*db, "runs"], env={"COLUMNS": "150"})
        assert "interrupted" in res.output.splitlines()[2]
        sent_before = sum(1 for b in sb.requests if b.get("model") == TARGET)
        done_before = {r.source_id for r in sqlite_store.list(replay_run_id=run_id) if r.status == "completed"}
        res = runner.invoke(cli, [*db, "replay", "--resume", run_id], env={"GEMINI_API_KEY": "k", "GOOGLE_GEMINI_BASE_URL": sb.base_url})
        assert res.exit_code == 0, res.output
        assert get_run(sqlite_store, run_id).status == "completed"
        assert sum(1 for b in sb.requests if b.get("model") == TARGET) - sent_before == 6 - len(done_before)


def test_runs_delete_removes_the_run_and_its_rows_only(client, store, sandbox, monkeypatch):
    from convostore.replaying import delete_run, get_run

    rc, heads = _seed(client, store)
    keep = replay(store, heads, model=TARGET, client=rc)
    gone = replay(store, heads, model="gemini-3-flash-preview", client=rc)
    originals = sorted(r.id for r in store.list(replays=False))
    assert delete_run(store, gone.id) == 4
    assert [r.id for r in list_runs(store)] == [keep.id]
    assert list(store.list(replay_run_id=gone.id)) == []
    assert len(list(store.list(replay_run_id=keep.id))) == 4
    assert sorted(r.id for r in store.list(replays=False)) == originals
    with pytest.raises(convostore.errors.NotFoundError):
        get_run(store, gone.id)
    live = store.create_run(id="run-live", source_head_id=heads[0], model=TARGET, mode="forced",
                            settings={"heads": [heads[0]]}, status="running")  # another process, beating now
    with pytest.raises(convostore.errors.ConvostoreError, match="still running"):
        delete_run(store, live.id)


def test_runs_delete_from_the_cli(client, sqlite_store, cli_env):
    rc, heads = _seed(client, sqlite_store)
    run = replay(sqlite_store, heads[0], model=TARGET, client=rc)
    runner = CliRunner()
    res = runner.invoke(cli, [*cli_env, "runs", "delete", run.id])
    assert res.exit_code == 0 and f"deleted {run.id} and its 2 replayed interactions" in res.output
    res = runner.invoke(cli, [*cli_env, "runs", "delete", run.id])
    assert res.exit_code == 1 and res.stderr.strip() == f"Error: no replay run {run.id!r}"
