"""The retired google-genai 1.x SDK records too (its Stainless ``_interactions`` client, ``/v1beta``).

The 1.x SDK lives in a side virtualenv (the ``sdk1_python`` fixture):
``tests/sdk1/record_sdk1.py`` runs there against the sandbox and records into a SQLite
file, which is then read back here with the current code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from convostore.store import Store

pytestmark = [pytest.mark.sdk1, pytest.mark.timeout(900)]  # may wait for a cold build of the side venv

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "sdk1" / "record_sdk1.py"


@pytest.fixture
def sdk1_run(sandbox, tmp_path, sdk1_python):
    """Run record_sdk1.py under the 1.x SDK; returns (its JSON output, the database path)."""
    db = tmp_path / "sdk1.db"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sdk1_python, str(SCRIPT), sandbox.base_url, str(db)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), db


def test_sdk1_exchanges_are_recorded(sdk1_run):
    out, db = sdk1_run
    assert out["version"].startswith("1.")
    store = Store(db)
    rows = {r.id: r for r in store.list()}
    t1, t2 = out["chain"]
    assert rows[t2].parent_id == t1 and rows[t2].link == "server"
    assert rows[t2].output_text == out["t2_text"]
    assert {r.api_version for r in rows.values()} == {"v1beta"}
    assert rows[t1].response.get("outputs") is not None  # the raw 1.x body, as received
    assert rows[t1].output_steps[-1]["type"] == "model_output"  # canonical steps

    streamed = [r for r in rows.values() if r.stream]
    full = next(r for r in streamed if r.input_text == "Tell me a long story.")
    assert full.output_text == out["stream_text"] and full.partial is False and full.status == "completed"
    cut = next(r for r in streamed if r.input_text == "Tell me another long story.")
    assert cut.partial is True and cut.status == "incomplete"

    bg = rows[out["background"]]
    assert bg.background is True and bg.status == "completed" and bg.output_text
    assert bg.input_text == "Research cricket history."
    assert rows[out["deleted"]].server_state == "deleted"
    assert rows[out["async"]].input_text == "Async hello."
    assert len(rows) == 7

    blob = b"".join(f.read_bytes()
        for p in db.parent.iterdir() if p.name.startswith(db.name)  # the file, its WAL, shm and spool dir
        for f in ([p] if p.is_file() else sorted(p.rglob("*"))) if f.is_file())
    assert b"sdk1-secret-key" not in blob


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def test_sdk1_rebuild_sends_a_function_result_back_as_a_user_turn(sandbox, tmp_path, sdk1_python):
    """A rebuilt 1.x chain is sent as ``{role, content}`` turns: the function result the
    application sent is the user's turn, the call the model's."""
    db = tmp_path / "sdk1.db"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sdk1_python, str(ROOT / "tests" / "sdk1" / "resume_sdk1.py"), sandbox.base_url, str(db)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    t1, t2, t3 = out["ids"]
    sent = sandbox.requests[-1]
    assert "previous_interaction_id" not in sent
    turns = sent["input"]
    roles = [(t["role"], [b.get("type") for b in t["content"]]) for t in turns]
    assert roles == [
        ("user", ["text"]),
        ("model", ["function_call"]),
        ("user", ["function_result"]),
        ("model", ["text"]),
        ("user", ["text"]),
    ]
    assert turns[2]["content"][0]["call_id"] == out["call_id"]
    assert "Your name is Ada" in out["t3_text"]
    store = Store(db)
    row = store.get(t3)
    assert (row.parent_id, row.link) == (t2, "rebuilt")
    assert [s["type"] for s in row.output_steps] == ["model_output"] and row.output_text == out["t3_text"]
    assert len(row.input_steps) == 5 and row.input_text == "What is my name?"
    store.close()
