"""The SDK compatibility matrix: the recorder, resume and replay contract under each tested
google-genai release (oldest and newest of 1.x, 2.x and 3.x).

Each release runs ``tests/sdk_matrix/contract.py`` in its own side virtualenv (built once,
in parallel, and cached: ``tests/sdk_venvs.py``) against a sandbox started here; the
archive it leaves is then read with the current code.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from convostore.sandbox import Sandbox
from convostore.store import Store
from tests.sdk_venvs import SDK_VERSIONS, BuildError, build_all

pytestmark = [pytest.mark.sdk_matrix, pytest.mark.timeout(900)]  # a cold build of the venvs takes minutes

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "tests" / "sdk_matrix" / "contract.py"


@pytest.fixture(scope="session")
def sdk_pythons() -> dict[str, str]:
    """Every matrix release's Python. Fails loudly rather than skipping: the range is claimed."""
    try:
        return build_all()
    except BuildError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def contract_runs(sdk_pythons, tmp_path_factory) -> Iterator[dict[str, tuple[subprocess.CompletedProcess[str], Sandbox, Path]]]:
    """The contract run under every release at once (one sandbox and archive each): the
    subprocesses mostly wait on each other's HTTP, so the matrix costs about one run."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    with ExitStack() as stack:
        started = {}
        for version, python in sdk_pythons.items():
            sb = stack.enter_context(Sandbox())
            db = tmp_path_factory.mktemp(f"sdk-{version}") / "matrix.db"
            proc = subprocess.Popen([python, str(CONTRACT), sb.base_url, str(db)], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=env)
            started[version] = (proc, sb, db)
        done = {}
        for version, (proc, sb, db) in started.items():
            out, err = proc.communicate(timeout=300)
            done[version] = (subprocess.CompletedProcess(proc.args, proc.returncode, out, err), sb, db)
        yield done


@pytest.mark.parametrize("version", SDK_VERSIONS)
def test_the_contract_holds_under_each_release(version, contract_runs):
    proc, sandbox, db = contract_runs[version]
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["version"] == version
    major = int(version.split(".")[0])

    store = Store(db)
    try:
        rows = {r.id: r for r in store.list(limit=100)}
        t1, t2, t3 = (rows[i] for i in out["chain"])
        # a chained conversation, recorded with its links
        assert (t1.link, t2.link, t2.parent_id) == ("root", "server", t1.id)
        assert "Karthik" in out["t2_text"] and t2.output_text == out["t2_text"]
        # the server forgot it; convostore rebuilt the history and carried on
        assert (t3.link, t3.parent_id, t2.server_state) == ("rebuilt", t2.id, "expired")
        assert "Karthik" in t3.output_text and "3 user turns" in t3.output_text and t3.output_text == out["t3_text"]
        rebuilt = next(r for r in sandbox.requests if isinstance(r.get("input"), list) and "Karthik" in json.dumps(r))
        if major == 1:  # in the generation's own input form: {role, content} turns, or steps
            assert [t["role"] for t in rebuilt["input"]] == ["user", "model", "user", "model", "user"]
        else:
            assert [s["type"] for s in rebuilt["input"] if s["type"] != "thought"] == [
                "user_input", "model_output", "user_input", "model_output", "user_input"]
        # API version as sent: /v1beta up to 2.x, /v1 from 3.0; stored canonically as steps
        assert {t1.api_version} == {"v1" if major >= 3 else "v1beta"}
        assert t1.output_steps[-1]["type"] == "model_output"
        # a stream read to the end, and an async call
        full = next(r for r in rows.values() if r.stream)
        assert full.output_text == out["stream_text"] != "" and full.partial is False and full.status == "completed"
        assert rows[out["async"]].input_text == "Async hello."
        # the conversation replayed on another model, turn by turn
        assert out["run"]["status"] == "completed"
        replayed = {r.source_id: r for r in rows.values() if r.link == "replay"}
        assert set(replayed) == {t1.id, t2.id, t3.id}
        assert {(r.model, r.replay_run_id, r.status) for r in replayed.values()} == {
            ("gemini-2.5-pro", out["run"]["id"], "completed")}
        assert "Karthik" in replayed[t3.id].output_text
    finally:
        store.close()
    blob = b"".join(f.read_bytes()
        for p in db.parent.iterdir() if p.name.startswith(db.name)  # the file, its WAL, shm and spool dir
        for f in ([p] if p.is_file() else sorted(p.rglob("*"))) if f.is_file())
    assert b"matrix-secret-key" not in blob
