"""`resume`, `chat` and `history` driven as a person would: real processes, a real terminal."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

import orjson
import pytest

import convostore

MODEL = "gemini-2.5-flash"


@pytest.fixture
def env(sandbox, tmp_path):
    e = dict(os.environ)
    e.update(
        GEMINI_API_KEY="test-key",
        GOOGLE_GEMINI_BASE_URL=sandbox.base_url,
        CONVOSTORE_DB=str(tmp_path / "cli.db"),
    )
    e.pop("GOOGLE_API_KEY", None)
    return e


def run(env, *args, input=None):
    return subprocess.run(
        [sys.executable, "-m", "convostore", *args], env=env, input=input, capture_output=True, text=True, timeout=60
    )


def _seed(env, client):
    store = convostore.Store(env["CONVOSTORE_DB"])
    rc = convostore.record(client, store=store)
    t1 = rc.interactions.create(model=MODEL, input="Hi, my name is Karthik.")
    t2 = rc.interactions.create(model=MODEL, input="I like cricket.", previous_interaction_id=t1.id)
    store.close()
    return t1, t2


def test_resume_continues_an_expired_chain(env, client, sandbox):
    _, t2 = _seed(env, client)
    sandbox.expire()
    out = run(env, "resume", t2.id, "What is my name?")
    assert out.returncode == 0, out.stderr
    assert "Karthik" in out.stdout
    assert "Traceback" not in out.stderr


def test_resume_streams(env, client, sandbox):
    _, t2 = _seed(env, client)
    out = run(env, "resume", t2.id, "What is my name?", "--stream")
    assert out.returncode == 0, out.stderr
    assert "Karthik" in out.stdout


def test_missing_key_is_a_one_line_error(env, client):
    _, t2 = _seed(env, client)
    env.pop("GEMINI_API_KEY")
    out = run(env, "resume", t2.id, "hello")
    assert out.returncode != 0
    assert "GEMINI_API_KEY" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_unknown_id_is_a_one_line_error(env):
    out = run(env, "history", "v1_nope")
    assert out.returncode != 0 and "Traceback" not in out.stderr


def test_history_json(env, client):
    _, t2 = _seed(env, client)
    out = run(env, "history", t2.id, "--json")
    data = orjson.loads(out.stdout)
    assert data["turns"] == 2 and data["head_id"] == t2.id
    assert [s["type"] for s in data["input"]].count("user_input") == 2


def test_chat_over_stdin_survives_expiry(env, client, sandbox):
    out = run(env, "chat", "--model", MODEL, input="Hi, my name is Ada.\nWhat is my name?\n")
    assert out.returncode == 0, out.stderr
    assert "Ada" in out.stdout.splitlines()[-1]
    sandbox.expire()
    out = run(env, "chat", "--continue", input="What is my name?\n")
    assert out.returncode == 0, out.stderr
    assert "Ada" in out.stdout


def test_chat_in_a_terminal(env, client, sandbox):
    pid, fd = pty.fork()
    if pid == 0:  # child: the CLI on a pseudo-terminal
        os.execvpe(sys.executable, [sys.executable, "-m", "convostore", "chat", "--model", MODEL], env)
    transcript = b""

    def read_until(marker: bytes, timeout: float = 30) -> None:
        nonlocal transcript
        deadline = time.monotonic() + timeout
        while marker not in transcript and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    transcript += os.read(fd, 4096)
                except OSError:
                    break
        assert marker in transcript, transcript.decode(errors="replace")

    try:
        read_until(b"> ")
        transcript = b""
        os.write(fd, b"Hi, my name is Grace.\n")
        read_until(b"\n> ", 30)
        transcript = b""
        os.write(fd, b"What is my name?\n")
        read_until(b"Grace")
        os.write(fd, b"/exit\n")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
