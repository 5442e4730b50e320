"""What a shell user pipes and types: data on stdout, status on stderr, options where they expect them."""

from __future__ import annotations

import re
import subprocess
import sys

import orjson
import pytest
from click.testing import CliRunner

import convostore
from convostore.cli import cli
from tests.fixtures_sandbox import make_client

MODEL = "gemini-2.5-flash"


@pytest.fixture
def seeded(sandbox, tmp_path, monkeypatch):
    """Two conversations (the first with a branch) and a replay run, env pointed at the sandbox."""
    db = tmp_path / "out.db"
    store = convostore.Store(db)
    client = convostore.record(make_client(sandbox.base_url), store=store)
    t1 = client.interactions.create(model=MODEL, input="Hi, my name is Karthik.")
    t2 = client.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t1.id)
    client.interactions.create(model=MODEL, input="a branch", previous_interaction_id=t1.id)
    other = client.interactions.create(model=MODEL, input="Something else entirely.")
    convostore.replay(store, t2.id, model="gemini-2.5-pro", client=client)
    client.close()
    store.close()
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", sandbox.base_url)
    monkeypatch.delenv("CONVOSTORE_DB", raising=False)
    return str(db), t1.id, t2.id, other.id


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


def test_db_goes_before_or_after_the_subcommand(seeded, monkeypatch):
    db, _, t2, _ = seeded
    runner = CliRunner()
    before = _ok(runner.invoke(cli, ["--db", db, "list", "--json"])).stdout
    for args in (["list", "--json", "--db", db], ["list", "-d", db, "--json"], ["-d", db, "list", "--json"]):
        assert _ok(runner.invoke(cli, args)).stdout == before
    monkeypatch.setenv("CONVOSTORE_DB", "/nonexistent/elsewhere.db")
    assert _ok(runner.invoke(cli, ["show", t2, "--db", db])).stdout
    assert "revision" in _ok(runner.invoke(cli, ["db", "upgrade", "--db", db])).stderr


def test_conversation_option_takes_any_id_of_the_conversation(seeded):
    db, t1, t2, other = seeded
    runner = CliRunner()

    def ids(*args):
        out = _ok(runner.invoke(cli, ["--db", db, *args])).stdout
        return {orjson.loads(line)["id"] for line in out.splitlines() if line.startswith("{") and '"convostore"' not in line} or {
            orjson.loads(line)["id"] for line in out.splitlines()
        }

    whole = ids("list", "--json", "-c", t1)
    assert t1 in whole and t2 in whole and other not in whole and len(whole) >= 3
    assert ids("list", "--json", "-c", t2) == whole
    assert ids("list", "--json", "--conversation", t2[:12]) == whole
    exported = ids("export", "-c", t2)
    assert exported == whole


def test_every_json_output_parses(seeded):
    db, t1, t2, _ = seeded
    runner = CliRunner()
    run_id = orjson.loads(_ok(runner.invoke(cli, ["--db", db, "runs", "--json"])).stdout.splitlines()[0])["id"]
    documents = [["show", t2, "--json"], ["show", t2, "--raw"], ["stats", "--json"], ["history", t2, "--json"],
                 ["history", t2], ["compare", t2, "--format", "json"], ["compare", run_id, "--format", "json"]]
    listings = [["list", "--json"], ["chain", t2, "--json"], ["tree", t1, "--json"], ["search", "Karthik", "--json"],
                ["runs", "--json"], ["expiring", "--within", "100w", "--json"], ["export"]]
    for args in documents:
        result = _ok(runner.invoke(cli, ["--db", db, *args]))
        assert orjson.loads(result.stdout), args
    for args in listings:
        result = _ok(runner.invoke(cli, ["--db", db, *args]))
        lines = result.stdout.splitlines()
        assert lines, args
        for line in lines:
            orjson.loads(line)


def test_status_lines_go_to_stderr(seeded, tmp_path):
    db, _, t2, _ = seeded
    runner = CliRunner()
    dump = tmp_path / "all.jsonl"
    result = _ok(runner.invoke(cli, ["--db", db, "export", "-o", str(dump)]))
    assert result.stdout == "" and "exported" in result.stderr
    result = _ok(runner.invoke(cli, ["--db", str(tmp_path / "copy.db"), "import", str(dump)]))
    assert result.stdout == "" and "imported" in result.stderr
    result = _ok(runner.invoke(cli, ["--db", db, "db", "upgrade"]))
    assert result.stdout == "" and "revision" in result.stderr
    result = _ok(runner.invoke(cli, ["--db", db, "refresh"]))
    assert result.stdout == "" and "checked" in result.stderr
    result = _ok(runner.invoke(cli, ["--db", db, "history", t2]))
    assert "turns ending at" in result.stderr and result.stdout.lstrip().startswith("[")
    result = _ok(runner.invoke(cli, ["--db", db, "resume", t2, "And now?"]))
    assert result.stdout.strip() and result.stderr.strip().startswith("[v1_")


def test_a_new_archive_logs_no_alembic_lines_and_log_lines_carry_one_prefix(tmp_path, sandbox):
    code = f"""
import logging, sys
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stdout)
import convostore
from tests.fixtures_sandbox import make_client
store = convostore.Store(sys.argv[1])
client = convostore.record(make_client({sandbox.base_url!r}), store=store)
t1 = client.interactions.create(model="gemini-2.5-flash", input="Hi", store=False)
client.interactions.create(model="gemini-2.5-flash", input="again", previous_interaction_id=t1.id, store=False)
"""
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "fresh.db")], capture_output=True, text=True, timeout=120,
                          cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert proc.returncode == 0, proc.stderr
    assert "alembic" not in proc.stdout
    assert "convostore: chain" in proc.stdout and "convostore: convostore:" not in proc.stdout


def test_an_ambiguous_prefix_lists_the_candidates(seeded):
    db, t1, t2, _ = seeded
    result = CliRunner().invoke(cli, ["--db", db, "show", "v1_"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    line = result.stderr.strip()
    assert line.startswith("Error: 'v1_' matches more than one interaction") and "\n" not in line
    stored = {row.id for row in convostore.Store(db).list(limit=None)}
    named = set(re.findall(r"v1_[\w-]{20,}", line))
    assert len(named) == 5 and named <= stored and line.rstrip().endswith("…; give more of the id")
    assert _ok(CliRunner().invoke(cli, ["--db", db, "show", t2[:12], "--json"])).stdout
    assert orjson.loads(_ok(CliRunner().invoke(cli, ["--db", db, "show", t2[:12], "--json"])).stdout)["id"] == t2
