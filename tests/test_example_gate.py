"""examples/replay-gate.github-actions.yml: its shell steps, run as written (offline), gate as promised."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "examples" / "replay-gate.github-actions.yml"


def _steps(text: str) -> list[str]:
    """The ``run:`` scripts of the workflow, in order (block scalars and one-liners)."""
    steps: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)(?:- )?run: ?(.*)$", lines[i])
        if m is None:
            i += 1
            continue
        if m.group(2).strip() == "|":
            indent, body = None, []
            i += 1
            while i < len(lines) and (not lines[i].strip() or indent is None or lines[i].startswith(indent)):
                if lines[i].strip():
                    indent = indent or re.match(r"^\s*", lines[i]).group(0)
                    body.append(lines[i][len(indent):])
                i += 1
            steps.append("\n".join(body))
        else:
            steps.append(m.group(2).strip())
            i += 1
    return steps


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_example_workflow_replays_against_the_sandbox_and_gates(tmp_path):
    text = WORKFLOW.read_text()
    steps = [s for s in _steps(text) if not s.startswith("pip install")]
    assert any("convostore replay --all" in s for s in steps) and any("--fail-under" in s for s in steps)
    port = str(_free_port())
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", CONVOSTORE_DB="ci.db", GEMINI_API_KEY="sandbox",
               GOOGLE_GEMINI_BASE_URL=f"http://127.0.0.1:{port}", GITHUB_STEP_SUMMARY=str(tmp_path / "summary.md"))
    env.pop("GOOGLE_API_KEY", None)
    script = "set -e\n" + "\n".join(s.replace("8765", port) for s in steps)
    code, out = _run(script, tmp_path / "ok", env)
    assert code == 0, out[-3000:]
    assert (tmp_path / "ok" / "replay-report.html").stat().st_size > 1000
    assert "judge sandbox-judge: 3 requests sent" in out
    assert "| turn | user |" in (tmp_path / "summary.md").read_text()


def _run(script: str, where: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run the steps in their own process group (the backgrounded sandbox dies with it); exit code, output."""
    import signal

    where.mkdir()
    log = where / "job.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(["bash", "-c", script], cwd=where, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=100)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    return code, log.read_text()
