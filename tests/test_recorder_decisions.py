"""Recorder decisions that mutation testing found untested (``bench/mutation-survivors.md``),
each through a recorded SDK client on the sandbox, as a user meets it."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import types

import convostore

MODEL = "gemini-2.5-flash"


def _client(sandbox, **options) -> genai.Client:
    return genai.Client(api_key="test-key", http_options=types.HttpOptions(
        base_url=sandbox.base_url, retry_options=types.HttpRetryOptions(attempts=1), **options))


def test_a_failed_create_is_recorded_with_the_api_version_it_was_sent_to(sandbox, sqlite_store):
    client = _client(sandbox, api_version="v1beta")
    rc = convostore.record(client, store=sqlite_store)
    sandbox.fail(500)
    with pytest.raises(Exception):
        rc.interactions.create(model=MODEL, input="Hello.", generation_config={"temperature": 0.5})
    sqlite_store.flush()
    (row,) = list(sqlite_store.list(limit=None))
    assert (row.status, row.api_version) == ("failed", "v1beta")
    assert row.request == {"model": MODEL, "input": "Hello.", "generation_config": {"temperature": 0.5}}
    client.close()
