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


def test_a_create_through_the_raw_response_api_is_recorded_as_a_plain_turn(sandbox, sqlite_store):
    """``with_raw_response`` skips the wrapped ``create``: the transport alone sees it."""
    client = _client(sandbox)
    rc = convostore.record(client, store=sqlite_store)
    first = rc.interactions.with_raw_response.create(model=MODEL, input="My name is Ada.").parse()
    second = rc.interactions.with_raw_response.create(
        model=MODEL, input="What is my name?", previous_interaction_id=first.id).parse()
    sqlite_store.flush()
    one, two = sqlite_store.get(first.id), sqlite_store.get(second.id)
    assert (one.hop_index, one.link, one.parent_id) == (0, "root", None)
    assert (two.hop_index, two.link, two.parent_id) == (0, "server", first.id)
    client.close()
