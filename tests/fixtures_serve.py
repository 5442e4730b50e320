"""Fixtures for `convostore serve` in a real browser: one rich archive, one server, one Chromium.

The archive is recorded through the real google-genai SDK against the sandbox, so every
page shows what a recorded application really stores: a chained conversation with a
branch and signed thoughts, function calls and results, an inline image and sound, an
answer full of XSS payloads, and a replay run against another model. The app reads it
through its own read-only store, as `convostore serve` does beside a recording process.
"""

from __future__ import annotations

import base64
import math
import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

THINKING = "gemini-3-flash-preview"  # the sandbox's gemini-3 models emit signed thoughts
TOOL_MODEL = "gemini-2.5-flash"
REPLAY_MODEL = "gemini-2.5-pro"
WEATHER = [{"type": "function", "name": "get_weather", "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
#: Stored text that must stay text on every page (the sandbox echoes it back in its answer).
XSS = ("<script>alert(1)</script> <img src=x onerror=alert(1)> "
       "</textarea><script>alert(2)</script> [x](javascript:alert(3))")


def png(width: int = 48, height: int = 32) -> bytes:
    """A real PNG (a gradient with a deterministic speckle, so it stays over the 1 KiB media threshold)."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            speckle = (x * 73 + y * 151) % 37
            rows += bytes(((40 + x * 4 + speckle) % 256, (90 + y * 5) % 256, (200 - x * 3) % 256))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows), 0)) + chunk(b"IEND", b"")


def wav(seconds: float = 0.25, rate: int = 8000) -> bytes:
    """A real WAV: a 440 Hz tone, 8-bit mono PCM."""
    n = int(seconds * rate)
    samples = bytes(int(128 + 60 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(n))
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate, 1, 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", n) + samples
    return b"RIFF" + struct.pack("<I", len(body)) + body


@dataclass
class ServeArchive:
    """What the archive holds, by role, so tests name turns rather than guess them."""

    path: Path
    store: Any  # the writable Store the recorded client records into
    sandbox: Any
    client: Any  # a recorded genai.Client
    conversations: list[str] = field(default_factory=list)  # root ids, oldest first
    chain: list[str] = field(default_factory=list)  # the main conversation's first two turns
    branch_a: list[str] = field(default_factory=list)  # turns after the fork, branch A (older)
    branch_b: list[str] = field(default_factory=list)  # turns after the fork, branch B (newer)
    call: str = ""  # the turn answering with a function_call
    result: str = ""  # the turn sending its function_result
    image: str = ""  # the turn carrying the image and the sound
    xss: str = ""  # the turn whose input and answer hold XSS
    run: str = ""  # the replay run of branch A on REPLAY_MODEL
    search_word: str = "zebrafish"  # in exactly one turn: branch_b[-1]

    def create(self, model: str, input: Any, previous: str | None = None, **kwargs: Any) -> str:  # noqa: A002 - the SDK's word
        """One recorded turn through the real SDK; its id."""
        if previous:
            kwargs["previous_interaction_id"] = previous
        return str(self.client.interactions.create(model=model, input=input, **kwargs).id)


def build_archive(path: Path) -> Iterator[ServeArchive]:
    """Record the archive into ``path`` (SQLite); yields it with its sandbox and client open."""
    import convostore
    from convostore.pytest_plugin import sandbox_client
    from convostore.sandbox import Sandbox
    from convostore.store import Store

    with Sandbox() as sb:
        store = Store(path)
        client = convostore.record(sandbox_client(sb.base_url), store=store)
        a = ServeArchive(path=path, store=store, sandbox=sb, client=client)
        try:
            # 1. Chained on the server, thoughts signed on every turn, forked after turn 2.
            t1 = a.create(THINKING, "Hi, my name is Ada. I like to play cricket.")
            t2 = a.create(THINKING, "I also like watching movies.", t1)
            a.chain = [t1, t2]
            a.branch_a = [a.create(THINKING, "What is my name?", t2)]
            b1 = a.create(THINKING, "Which sport do I like?", t2)
            a.branch_b = [b1, a.create(THINKING, "Tell me about the zebrafish, please.", b1)]
            a.conversations.append(t1)
            # 2. A function call and its result.
            a.call = a.create(TOOL_MODEL, "Please use get_weather for Paris.", tools=WEATHER)
            call = next(s for s in store.get(a.call).output_steps if s["type"] == "function_call")
            a.result = a.create(TOOL_MODEL, [{"type": "function_result", "call_id": call["id"], "name": "get_weather",
                                              "result": {"sky": "sunny", "celsius": 21}}], a.call, tools=WEATHER)
            a.conversations.append(a.call)
            # 3. Media inline: an image and a sound.
            a.image = a.create(TOOL_MODEL, [
                {"type": "text", "text": "What is in this picture, and what is this sound?"},
                {"type": "image", "data": base64.b64encode(png()).decode(), "mime_type": "image/png"},
                {"type": "audio", "data": base64.b64encode(wav()).decode(), "mime_type": "audio/wav"},
            ])
            a.conversations.append(a.image)
            # 4. XSS in the input and (echoed) in the stored answer.
            a.xss = a.create(TOOL_MODEL, XSS)
            assert "<script>alert(2)</script>" in store.get(a.xss).output_text, "the sandbox no longer echoes: pick another trigger"
            a.conversations.append(a.xss)
            # 5. Branch A replayed on another model: /runs/{id} has a comparison.
            a.run = convostore.replay(store, a.branch_a[-1], model=REPLAY_MODEL, client=client).id
            store.flush()
            yield a
        finally:
            client.close()
            store.close()


@pytest.fixture(scope="module")
def serve_archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeArchive]:
    """The rich archive, recorded once per test module."""
    yield from build_archive(tmp_path_factory.mktemp("serve") / "archive.db")


class RunningApp:
    """The app under uvicorn in a thread, on a socket bound before the thread starts
    (connections queue in its backlog, so nobody waits for "started")."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(128)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]},
                                       name="convostore-serve-test", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()


@pytest.fixture(scope="module")
def serve_url(serve_archive: ServeArchive) -> Iterator[str]:
    """The base URL of `convostore serve`'s app over the archive, read-only, no token."""
    from convostore.serve import create_app, open_readonly

    store = open_readonly(str(serve_archive.path))
    app = RunningApp(create_app(store))
    try:
        yield app.url
    finally:
        app.close()
        store.close()
