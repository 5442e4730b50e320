"""pytest fixtures for testing code that talks to the Interactions API, offline.

Installed with convostore (entry point ``pytest11``), so a project's tests can use them
with no conftest:

    def test_my_bot_remembers(convostore_client, convostore_store, convostore_sandbox):
        t1 = convostore_client.interactions.create(model="gemini-2.5-flash", input="I'm Ada.")
        ...
        convostore_sandbox.expire()          # the server forgets; convostore resumes

- ``convostore_sandbox``: a running ``convostore.Sandbox`` on a free loopback port.
- ``convostore_store``: a ``convostore.Store`` in a fresh SQLite file under ``tmp_path``.
- ``convostore_client``: a real ``genai.Client`` on the sandbox, recorded into that store.

``sandbox_client(base_url)`` builds such a client unrecorded. Disable the plugin with
``-p no:convostore``. Imports stay lazy: loading the plugin costs pytest nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from google.genai import Client

    from .sandbox import Sandbox
    from .store import Store


def sandbox_client(base_url: str, api_key: str = "test-key") -> Client:
    """A real google-genai client on a sandbox, with short retry delays so fault tests stay fast."""
    from google import genai
    from google.genai import types

    return genai.Client(
        api_key=api_key,
        http_options=types.HttpOptions(
            base_url=base_url,
            retry_options=types.HttpRetryOptions(attempts=4, initial_delay=0.01, max_delay=0.05),
        ),
    )


@pytest.fixture
def convostore_sandbox() -> Iterator[Sandbox]:
    """A sandbox Interactions API on a free loopback port, stopped after the test."""
    from .sandbox import Sandbox

    with Sandbox() as sb:
        yield sb


@pytest.fixture
def convostore_store(tmp_path: Path) -> Iterator[Store]:
    """An archive in a fresh SQLite file (``tmp_path / "convostore.db"``), closed after the test."""
    from .store import Store

    store = Store(tmp_path / "convostore.db")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def convostore_client(convostore_sandbox: Sandbox, convostore_store: Store) -> Iterator[Client]:
    """A ``genai.Client`` pointed at ``convostore_sandbox`` and recorded into ``convostore_store``."""
    from .recording.methods import record

    client = record(sandbox_client(convostore_sandbox.base_url), store=convostore_store)
    try:
        yield client
    finally:
        client.close()
