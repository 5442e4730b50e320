"""Fixtures for `convostore serve` in a real browser: one rich archive, one server, one Chromium.

The archive is recorded through the real google-genai SDK against the sandbox, so every
page shows what a recorded application really stores: a chained conversation with a
branch and signed thoughts, function calls and results, an inline image and sound,
answers full of XSS payloads, and a replay run against another model (tests/serve_helpers.py
``fill_archive`` plus a sound and the run). The app reads it through its own read-only
store, as `convostore serve` does beside a recording process.
"""

from __future__ import annotations

import base64
import contextlib
import math
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPLAY_MODEL = "gemini-2.5-pro"


def wav(seconds: float = 0.25, rate: int = 8000) -> bytes:
    """A real WAV: a 440 Hz tone, 8-bit mono PCM."""
    n = int(seconds * rate)
    samples = bytes(int(128 + 60 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(n))
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate, 1, 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", n) + samples
    return b"RIFF" + struct.pack("<I", len(body)) + body


@dataclass
class ServeArchive:
    """What the archive holds, by role (``ids``: tests/serve_helpers.py ``fill_archive``'s
    names, plus ``sound``), so tests name turns rather than guess them."""

    path: Path
    store: Any  # the writable Store the recorded client records into
    client: Any  # a recorded genai.Client on the sandbox
    ids: dict[str, str]
    run: str  # the replay run of root -> t2 -> t3 on REPLAY_MODEL
    conversations: list[str]  # root ids, oldest first

    def create(self, model: str, input: Any, previous: str | None = None, **kwargs: Any) -> str:  # noqa: A002 - the SDK's word
        """One more recorded turn through the real SDK; its id."""
        if previous:
            kwargs["previous_interaction_id"] = previous
        return str(self.client.interactions.create(model=model, input=input, **kwargs).id)


def build_archive(path: Path) -> Iterator[ServeArchive]:
    """Record the archive into ``path`` (SQLite); yields it with its sandbox and client open.

    root -> t2 -> t3 (a thinking model: signed thoughts) and root -> alt (newer: the
    default branch), an image, a function call and its result, a conversation of XSS
    payloads (fill_archive), then a sound, and t3's chain replayed on REPLAY_MODEL.
    """
    import convostore
    from convostore.pytest_plugin import sandbox_client
    from convostore.sandbox import Sandbox
    from convostore.store import Store

    from .serve_helpers import fill_archive

    with Sandbox() as sb:
        store = Store(path)
        client = convostore.record(sandbox_client(sb.base_url), store=store)
        try:
            ids = fill_archive(client)
            ids["sound"] = str(client.interactions.create(model="gemini-2.5-flash", input=[
                {"type": "text", "text": "What is this sound?"},
                {"type": "audio", "data": base64.b64encode(wav()).decode(), "mime_type": "audio/wav"},
            ]).id)
            run = convostore.replay(store, ids["t3"], model=REPLAY_MODEL, client=client).id
            store.flush()
            roots = [ids[k] for k in ("root", "image", "call", "xss", "sound")]
            yield ServeArchive(path=path, store=store, client=client, ids=ids, run=run, conversations=roots)
        finally:
            client.close()
            store.close()


@pytest.fixture(scope="module")
def serve_archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeArchive]:
    """The rich archive, recorded once per test module."""
    yield from build_archive(tmp_path_factory.mktemp("serve") / "archive.db")


@contextlib.contextmanager
def serving(archive: ServeArchive, **kwargs: Any) -> Iterator[str]:
    """The app (``create_app`` keywords) over its own read-only store of ``archive``, as
    `convostore serve` reads an archive another process records into; the base URL."""
    from convostore.serve import open_readonly

    from .serve_helpers import running_app

    store = open_readonly(str(archive.path))
    try:
        with running_app(store, **kwargs) as url:
            yield url
    finally:
        store.close()


@pytest.fixture(scope="module")
def serve_url(serve_archive: ServeArchive) -> Iterator[str]:
    """The base URL of `convostore serve`'s app over the archive, no token."""
    with serving(serve_archive) as url:
        yield url
