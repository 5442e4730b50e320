"""The real JavaScript SDK (``@google/genai``, ``tests/js``) as a test client, driven over a pipe.

``node tests/js/client.mjs commands`` reads one JSON command a line and answers each with
one JSON line (a streamed create first prints each event as its own line, as the SDK
yields it). ``JsClient`` keeps one node process per base URL, so a module pays node's
start-up once. Node and npm are required when ``CONVOSTORE_REQUIRE_NODE=1`` (``.ci/run``
sets it); otherwise the tests skip, saying how to enable them.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

JS_DIR = Path(__file__).parent / "js"
SDK_PACKAGE = JS_DIR / "node_modules" / "@google" / "genai" / "package.json"
ENABLE = "npm ci --prefix tests/js"
#: How long one answer may take before the test fails instead of hanging (a bound, not a wait).
ANSWER_TIMEOUT = 60.0


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CONVOSTORE_REQUIRE_NODE"):
        pytest.fail(f"{reason} (CONVOSTORE_REQUIRE_NODE=1: node is required, as in CI)")
    pytest.skip(f"{reason}; to run these tests: {ENABLE} (with Node.js installed; CONVOSTORE_REQUIRE_NODE=1 makes this a failure, as in CI)")


def _pinned_version() -> str:
    return str(orjson.loads((JS_DIR / "package.json").read_bytes())["dependencies"]["@google/genai"])


def ensure_node() -> str:
    """The node binary, with tests/js's locked packages installed (``npm ci``, from the npm
    cache when it has them) if they are missing or not the pinned version."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        _skip_or_fail("node and npm are not installed")
        raise AssertionError("unreachable")
    installed = orjson.loads(SDK_PACKAGE.read_bytes())["version"] if SDK_PACKAGE.exists() else None
    if installed != _pinned_version():
        done = subprocess.run(
            [npm, "ci", "--prefix", str(JS_DIR), "--prefer-offline", "--ignore-scripts", "--no-audit", "--no-fund",
             "--loglevel=error"],
            capture_output=True, text=True, timeout=600,
        )
        if done.returncode != 0:
            _skip_or_fail(f"{ENABLE} failed: {done.stderr.strip()[-500:]}")
    return node


class JsClient:
    """One ``node client.mjs commands`` process: a Node app using ``@google/genai`` on ``base_url``."""

    def __init__(self, node: str, base_url: str, api_key: str) -> None:
        env = {**os.environ, "GOOGLE_GEMINI_BASE_URL": base_url, "GEMINI_API_KEY": api_key}
        self._proc = subprocess.Popen(
            [node, str(JS_DIR / "client.mjs"), "commands"], cwd=JS_DIR, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def send(self, op: str, **command: Any) -> None:
        """Start one SDK call; read its answer with ``line()`` / ``answer()``."""
        assert self._proc.stdin is not None
        self._proc.stdin.write(orjson.dumps({"op": op, **command}).decode() + "\n")
        self._proc.stdin.flush()

    def line(self, timeout: float = ANSWER_TIMEOUT) -> dict[str, Any]:
        """The next JSON line the client prints (an event, or a call's answer)."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the JS client printed nothing for {timeout} s") from None
        if line is None:
            stderr = self._proc.stderr.read() if self._proc.stderr else ""
            raise AssertionError(f"the JS client exited: {stderr[-2000:]}")
        result: dict[str, Any] = orjson.loads(line)
        return result

    def answer(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The events printed before the call's answer, and the answer."""
        events = []
        while "event" in (got := self.line()):
            events.append(got["event"])
        return events, got

    def call(self, op: str, **command: Any) -> dict[str, Any]:
        """One SDK call; its ``ok`` result (an ``error`` answer fails the test)."""
        self.send(op, **command)
        _, got = self.answer()
        assert "ok" in got, got
        result: dict[str, Any] = got["ok"]
        return result

    def fails(self, op: str, **command: Any) -> dict[str, Any]:
        """One SDK call that must fail: its error (status, message, response headers)."""
        self.send(op, **command)
        _, got = self.answer()
        assert "error" in got, got
        error: dict[str, Any] = got["error"]
        return error

    def close(self) -> None:
        if self._proc.stdin:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream:
                stream.close()
