"""Every failure a person can cause on the command line is one `Error:` line, exit 1, no traceback.

The commands that call the API run against a closed port, a 401 and a 500 from the real
sandbox; the commands that take an id, a date or a duration get bad values; read commands
get a path where no archive exists.
"""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convostore
from convostore.cli import cli
from tests.fixtures_sandbox import make_client

MODEL = "gemini-2.5-flash"


@pytest.fixture
def seeded(sandbox, tmp_path, monkeypatch):
    """An archive with a two-turn chain, and the environment of a user pointed at the sandbox."""
    db = tmp_path / "errors.db"
    store = convostore.Store(db)
    client = convostore.record(make_client(sandbox.base_url), store=store)
    t1 = client.interactions.create(model=MODEL, input="Hi, my name is Karthik.")
    t2 = client.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t1.id)
    client.close()
    store.close()
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", sandbox.base_url)
    monkeypatch.delenv("CONVOSTORE_DEBUG", raising=False)
    monkeypatch.delenv("CONVOSTORE_DB", raising=False)
    return str(db), t1.id, t2.id


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def assert_one_line_error(result, *expect: str) -> str:
    """Exit 1; one `Error:` line, the last on stderr, holding each of ``expect``; no traceback.

    Status lines before it (`Continuing ...`, a progress label) are fine: they are on stderr too.
    """
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert "Traceback" not in result.output, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "Error:" in line]
    assert len(errors) == 1 and lines[-1] == errors[0] and errors[0].startswith("Error: "), result.stderr
    assert "Error:" not in result.stdout
    for text in expect:
        assert text in errors[0], errors[0]
    return errors[0]


API_COMMANDS = {
    "resume": lambda t2: (["resume", t2, "hi"], None),
    "resume --stream": lambda t2: (["resume", t2, "hi", "--stream"], None),
    "chat": lambda t2: (["chat"], "hello\n"),
    "chat -c": lambda t2: (["chat", "-c", t2], "hello\n"),
    "refresh": lambda t2: (["refresh", t2], None),
    "delete --server": lambda t2: (["delete", t2, "--server", "--yes"], None),
}


# The SDK retries a 500 with backoff (~7 s per command), so the variants of a command
# (--stream, chat -c) meet the closed port and the 401 only.
FAULTS = [(c, f) for c in sorted(API_COMMANDS) for f in ("closed port", "401", "500") if f != "500" or " " not in c]


@pytest.mark.parametrize("command,fault", FAULTS, ids=[f"{c}-{f}" for c, f in FAULTS])
def test_api_failures_are_one_line(seeded, sandbox, monkeypatch, command, fault):
    db, _, t2 = seeded
    args, stdin = API_COMMANDS[command](t2)
    if fault == "closed port":
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", _closed_port_url())
        expect = ["cannot reach the API", "127.0.0.1"]
    elif fault == "401":
        sandbox.fail(401, 1000)
        expect = ["HTTP 401", "GEMINI_API_KEY"]
    else:
        sandbox.fail(500, 1000)
        expect = ["HTTP 500", "try again later"]
    result = CliRunner().invoke(cli, ["--db", db, *args], input=stdin)
    assert_one_line_error(result, *expect)


def test_debug_shows_the_traceback(seeded, monkeypatch):
    db, _, t2 = seeded
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", _closed_port_url())
    result = CliRunner().invoke(cli, ["resume", t2, "hi", "--db", db, "--debug"])
    assert result.exit_code == 1 and result.exception is not None and not isinstance(result.exception, SystemExit)
    monkeypatch.setenv("CONVOSTORE_DEBUG", "1")
    result = CliRunner().invoke(cli, ["--db", db, "resume", t2, "hi"])
    assert result.exception is not None and not isinstance(result.exception, SystemExit)


def test_missing_api_key_names_the_variable(seeded, monkeypatch):
    db, _, t2 = seeded
    monkeypatch.delenv("GEMINI_API_KEY")
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    assert_one_line_error(CliRunner().invoke(cli, ["--db", db, "resume", t2, "hi"]), "GEMINI_API_KEY")


def test_chat_keeps_the_session_after_a_failed_turn(seeded, sandbox):
    db, _, t2 = seeded
    sandbox.fail(401, 1)  # a 401 is not retried: the first turn fails, the next one goes through
    result = CliRunner().invoke(cli, ["--db", db, "chat", "-c", t2], input="first try\nWhat is my name?\n")
    assert_one_line_error(result, "HTTP 401")
    assert "Karthik" in result.stdout


LONG_ID = "v1_" + "a" * 50_000
ID_COMMANDS = [
    ["show", "{id}"], ["chain", "{id}"], ["tree", "{id}"], ["history", "{id}"], ["resume", "{id}", "hi"],
    ["list", "-c", "{id}"], ["export", "-c", "{id}"], ["chat", "-c", "{id}"], ["refresh", "{id}"],
    ["replay", "{id}", "-m", MODEL], ["compare", "{id}"],
]


BAD_IDS = [LONG_ID, "v1_nope", "", "two words", "tab\there"]


@pytest.mark.parametrize("command", ID_COMMANDS, ids=[" ".join(c[:2]) for c in ID_COMMANDS])
def test_bad_ids_are_one_line(seeded, command):
    for bad in BAD_IDS:
        args = [a.replace("{id}", bad) for a in command]
        result = CliRunner().invoke(cli, ["--db", seeded[0], *args], input="hello\n")
        line = assert_one_line_error(result)
        assert len(line) < 500


def test_bad_durations_and_dates_are_one_line(seeded):
    for args in (["expiring", "--within", "2x"], ["expiring", "--within", "-3d"], ["expiring", "--within", "1e400d"],
                 ["list", "--since", "yesterday-ish"], ["export", "--since", "2026-13-45"]):
        assert_one_line_error(CliRunner().invoke(cli, ["--db", seeded[0], *args]), "Invalid value")


@pytest.mark.parametrize(
    "db,expect",
    [("postgresql://u@[::1:5432/x", "not a database URL"), ("~nouser-convostore/x.db", "nouser"),
     ("postgresql+psycopg://postgres@127.0.0.1:1/x", "127.0.0.1")],
    ids=["bad-ipv6", "no-such-user", "closed-port"],
)
def test_bad_database_urls_are_one_line(tmp_path, db, expect):
    assert_one_line_error(CliRunner().invoke(cli, ["--db", db, "list"]), expect)


READ_COMMANDS = [["list"], ["show", "v1_x"], ["chain", "v1_x"], ["tree", "v1_x"], ["search", "x"], ["stats"], ["export"],
                 ["history", "v1_x"], ["expiring"], ["refresh"], ["runs"], ["compare", "v1_x"], ["resume", "v1_x", "hi"],
                 ["replay", "v1_x", "-m", MODEL]]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=[c[0] for c in READ_COMMANDS])
def test_read_commands_refuse_a_path_without_an_archive(tmp_path, monkeypatch, command):
    monkeypatch.setenv("GEMINI_API_KEY", "k")
    missing = tmp_path / "typo" / "archive.db"
    result = CliRunner().invoke(cli, ["--db", str(missing), *command])
    assert_one_line_error(result, f"no archive at {missing}")
    assert not missing.parent.exists()


def test_commands_that_record_or_import_create_the_archive(tmp_path, seeded):
    dump = tmp_path / "all.jsonl"
    assert CliRunner().invoke(cli, ["--db", seeded[0], "export", "-o", str(dump)]).exit_code == 0
    for command in (["import", str(dump)], ["db", "upgrade"], ["chat"]):
        target = tmp_path / command[0] / "new.db"
        result = CliRunner().invoke(cli, ["--db", str(target), *command], input="hello\n")
        assert result.exit_code == 0, result.output
        assert target.exists()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(max_size=300))
def test_any_id_text_is_an_answer_or_one_error_line(seeded, value):
    for command in ("show", "history"):
        result = CliRunner().invoke(cli, ["--db", seeded[0], command, "--", value])
        assert "Traceback" not in result.output
        if result.exit_code != 0:
            assert_one_line_error(result)
