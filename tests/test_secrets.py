"""The API key never reaches the database: not the client's, not one passed per call,
not when the call fails before anything is sent. And a ``create`` the SDK refuses
before sending is still one ``failed`` record with its error (README: one failed record
per failed ``create``).

Checked the hard way: the SQLite archive's bytes (database, WAL and shared-memory
files) are searched for the key.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google import genai
from google.genai import types

import convostore

MODEL = "gemini-2.5-flash"
CLIENT_KEY = "client-key-7f3a9c"
CALL_KEY = "per-call-key-52e8b1"


def _archive_bytes(store) -> bytes:
    flush = getattr(store, "flush", None)
    if callable(flush):
        flush()
    db = Path(store.path)
    return b"".join(f.read_bytes()
        for p in db.parent.iterdir() if p.name.startswith(db.name)  # the file, its WAL, shm and spool dir
        for f in ([p] if p.is_file() else sorted(p.rglob("*"))) if f.is_file())


def _assert_no_key(store, *keys: str) -> None:
    blob = _archive_bytes(store)
    for key in keys:
        assert key.encode() not in blob, f"{key!r} is in the archive"


@pytest.fixture
def rc(sandbox, sqlite_store):
    client = genai.Client(api_key=CLIENT_KEY, http_options=types.HttpOptions(
        base_url=sandbox.base_url, retry_options=types.HttpRetryOptions(attempts=3, initial_delay=0.01, max_delay=0.02)))
    yield convostore.record(client, store=sqlite_store)
    client.close()


@pytest.mark.parametrize(
    "bad_input",
    [[{"type": "user_input", "content": "not a list"}], [{"no_type": 1}], 42, [{"role": "robot", "content": "x"}]],
    ids=["content-not-a-list", "item-without-type", "a-number", "unknown-role"],
)
def test_a_create_refused_before_sending_is_one_failed_record_without_the_key(rc, sqlite_store, sandbox, bad_input):
    with pytest.raises(Exception) as info:
        rc.interactions.create(model=MODEL, input=bad_input, extra_headers={"x-goog-api-key": CALL_KEY})
    assert sandbox.requests == []  # refused by the SDK: nothing was sent
    rows = list(sqlite_store.list(limit=None))
    assert len(rows) == 1
    row = rows[0]
    assert row.status == "failed" and row.id.startswith("local-")
    assert row.error["type"] == type(info.value).__name__ and row.error["message"]
    assert row.request["input"] == bad_input and row.request["model"] == MODEL
    assert "extra_headers" not in row.request
    _assert_no_key(sqlite_store, CLIENT_KEY, CALL_KEY)


@pytest.mark.parametrize("header", ["x-goog-api-key", "authorization"])
def test_a_key_the_transport_refuses_is_not_quoted_into_the_failed_record(rc, sqlite_store, sandbox, header):
    # An illegal header value: the HTTP client raises before sending, quoting the value.
    value = f"{CALL_KEY}\n" if header == "x-goog-api-key" else f"Bearer {CALL_KEY}\x00"
    with pytest.raises(Exception):
        rc.interactions.create(model=MODEL, input="Hello.", extra_headers={header: value})
    assert sandbox.requests == []
    (row,) = list(sqlite_store.list(limit=None))
    assert row.status == "failed" and "[redacted]" in row.error["message"]
    _assert_no_key(sqlite_store, CLIENT_KEY, CALL_KEY)


def test_a_key_passed_per_call_never_reaches_the_database(rc, sqlite_store, sandbox):
    headers = {"x-goog-api-key": CALL_KEY}
    t1 = rc.interactions.create(model=MODEL, input="My name is Ada.", extra_headers=headers)
    list(rc.interactions.create(model=MODEL, input="More.", previous_interaction_id=t1.id, stream=True, extra_headers=headers))
    sandbox.expire()
    rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t1.id, extra_headers=headers)
    sandbox.fail(500, 10)  # fails after sending, through the SDK's retries
    with pytest.raises(Exception):
        rc.interactions.create(model=MODEL, input="Again.", extra_headers=headers)
    rows = list(sqlite_store.list(limit=None))
    assert sorted(r.status for r in rows) == ["completed", "completed", "completed", "failed"]
    assert {r.link for r in rows} >= {"rebuilt"}
    _assert_no_key(sqlite_store, CLIENT_KEY, CALL_KEY)
