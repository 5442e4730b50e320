"""`replay`, `runs`, `compare`, `expiring`, `refresh` from the command line."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
from click.testing import CliRunner

import convostore
from convostore.cli import cli
from convostore.resume import expiring


def _seed(client, store):
    rc = convostore.record(client, store=store)
    heads = []
    for name in ("Ada", "Grace"):
        t1 = rc.interactions.create(model="gemini-2.5-flash", input=f"Hi, my name is {name}.")
        heads.append(rc.interactions.create(model="gemini-2.5-flash", input="What is my name?", previous_interaction_id=t1.id).id)
    return rc, heads


def test_replay_all_runs_and_compare_html(client, sqlite_store, sandbox, tmp_path, monkeypatch):
    _, heads = _seed(client, sqlite_store)
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", sandbox.base_url)
    runner = CliRunner()
    db = ["--db", sqlite_store.path]
    res = runner.invoke(cli, [*db, "replay", "--all", "--model", "gemini-2.5-pro", "--mode", "free", "--json"])
    assert res.exit_code == 0, res.output
    run = orjson.loads(res.output[res.output.index("{"):])
    assert run["summary"]["conversations"] == 2 and run["summary"]["verdicts"] == {"ok": 4}
    res = runner.invoke(cli, [*db, "runs", "--json"])
    assert orjson.loads(res.output.splitlines()[0])["id"] == run["id"]
    out = tmp_path / "report.html"
    res = runner.invoke(cli, [*db, "compare", heads[0], "--format", "html", "-o", str(out)])
    assert res.exit_code == 0 and out.read_text().count('class="turn"') == 2
    res = runner.invoke(cli, [*db, "compare", run["id"], "--format", "table"])
    assert "gemini-2.5-pro" in res.output
    res = runner.invoke(cli, [*db, "replay", heads[0]])
    assert res.exit_code != 0 and "--model" in res.output


def test_expiring_and_refresh(client, sqlite_store, sandbox, monkeypatch):
    _, heads = _seed(client, sqlite_store)
    soon = datetime.now(timezone.utc) + timedelta(hours=3)
    sqlite_store.update(heads[0], expires_at=soon)
    found = list(expiring(sqlite_store, "12h"))
    assert [e.head_id for e in found] == [heads[0]]
    assert list(expiring(sqlite_store, "1h")) == []
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", sandbox.base_url)
    runner = CliRunner()
    res = runner.invoke(cli, ["--db", sqlite_store.path, "expiring", "--within", "12h"])
    assert heads[0] in res.output
    sandbox.expire(heads[1])
    res = runner.invoke(cli, ["--db", sqlite_store.path, "refresh", heads[0], heads[1]])
    assert res.exit_code == 0, res.output
    assert "1 live, 1 gone" in res.output
    assert sqlite_store.get(heads[1]).server_state == "expired"
