"""The recorder: every Interactions exchange of a real SDK client, as sent and received.

Driven through google-genai 3.x over HTTP against the sandbox, sync and async; the store
fixture runs each test on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time

import pytest
from google import genai
from google.genai import types

import convostore
from convostore import wire
from convostore.errors import NotFoundError
from convostore.recorder import annotate

MODEL = "gemini-2.5-flash"


# --- helpers -----------------------------------------------------------------------------


def _client(sandbox, *, attempts: int | None = None, key: str = "test-key") -> genai.Client:
    retry = types.HttpRetryOptions(attempts=attempts, initial_delay=0.01, max_delay=0.05) if attempts else None
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=sandbox.base_url, retry_options=retry))


def _ids(store) -> set[str]:
    return {row.id for row in store.list(limit=None)}


@pytest.fixture
def rc(client, store):
    return convostore.record(client, store=store)


@pytest.fixture
def arc(client, store):
    return convostore.record(client, store=store).aio


def run(coro):
    return asyncio.run(coro)


# --- plain create ------------------------------------------------------------------------


def test_plain_create_is_one_lossless_row(rc, store, sandbox):
    out = rc.interactions.create(model=MODEL, input="Capital of India.")
    row = store.get(out.id)
    assert row.model == MODEL
    assert row.status == "completed"
    assert row.input_text == "Capital of India."
    assert row.output_text and row.output_text == wire.output_text(wire.normalize_output(row.response))
    assert row.request["input"] == "Capital of India."
    assert row.response["id"] == out.id
    assert row.link in (None, "root")
    assert row.stream is False
    assert row.latency_ms is not None and row.latency_ms >= 0
    assert row.server_state == "live"
    assert _ids(store) == {out.id}


def test_async_plain_create(arc, store):
    out = run(arc.interactions.create(model=MODEL, input="Capital of France."))
    assert store.get(out.id).input_text == "Capital of France."


def test_chain_and_branches(rc, store):
    t1 = rc.interactions.create(model=MODEL, input="Hi, my name is Karthik.")
    a = rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t1.id)
    b = rc.interactions.create(model=MODEL, input="What do I like?", previous_interaction_id=t1.id)
    for branch in (a, b):
        row = store.get(branch.id)
        assert (row.parent_id, row.previous_interaction_id, row.link) == (t1.id, t1.id, "server")
        assert row.conversation_id == t1.id
    assert [r.id for r in store.chain(b.id)] == [t1.id, b.id]


def test_stateless_history_links_by_content(rc, store):
    t1 = rc.interactions.create(model=MODEL, input="Hi, my name is Karthik.")
    first = store.get(t1.id)
    history = [*first.input_steps, *first.output_steps, {"type": "user_input", "content": [{"type": "text", "text": "What is my name?"}]}]
    t2 = rc.interactions.create(model=MODEL, input=history)
    row = store.get(t2.id)
    assert (row.parent_id, row.link) == (t1.id, "stateless")
    assert row.previous_interaction_id is None


# --- streams -----------------------------------------------------------------------------


def _stream_text(events) -> str:
    parts = []
    for event in events:
        if getattr(event, "event_type", None) == "step.delta" and getattr(event.delta, "type", None) == "text":
            parts.append(event.delta.text)
    return "".join(parts)


def test_stream_read_fully_is_the_interaction_it_assembles_to(rc, store):
    stream = rc.interactions.create(model=MODEL, input="Tell me a long story about cricket.", stream=True)
    text = _stream_text(stream)
    (iid,) = _ids(store)
    row = store.get(iid)
    assert row.stream is True and row.partial is False
    assert row.status == "completed"
    assert row.output_text == text
    assert row.input_text == "Tell me a long story about cricket."


def test_stream_abandoned_early_is_recorded_partial(rc, store, sandbox):
    stream = rc.interactions.create(model=MODEL, input="Tell me a long story about cricket.", stream=True)
    first = next(iter(stream))
    assert first is not None
    stream.close()
    (iid,) = _ids(store)
    row = store.get(iid)
    assert row.partial is True
    assert row.status == "incomplete"


def test_stream_dropped_without_close_is_recorded_when_collected(rc, store):
    stream = rc.interactions.create(model=MODEL, input="Tell me a long story about tennis.", stream=True)
    for _ in stream:
        break
    del stream
    gc.collect()
    (iid,) = _ids(store)
    assert store.get(iid).partial is True


def test_async_stream_read_fully_and_abandoned(arc, store):
    async def go():
        s1 = await arc.interactions.create(model=MODEL, input="Tell me a long story.", stream=True)
        text = ""
        async for event in s1:
            if getattr(event, "event_type", None) == "step.delta" and getattr(event.delta, "type", None) == "text":
                text += event.delta.text
        s2 = await arc.interactions.create(model=MODEL, input="Tell me another long story.", stream=True)
        async for _ in s2:
            break
        await s2.close()
        return text

    text = run(go())
    rows = {r.input_text: r for r in store.list(limit=None)}
    assert rows["Tell me a long story."].output_text == text
    assert rows["Tell me a long story."].partial is False
    assert rows["Tell me another long story."].partial is True
    assert rows["Tell me another long story."].status == "incomplete"


# --- background, get, cancel, delete ------------------------------------------------------


def _finish(rc, iid: str, tries: int = 500):
    got = None
    for _ in range(tries):
        got = rc.interactions.get(iid)
        if got.status not in ("in_progress", "queued"):
            return got
        time.sleep(0.01)
    return got


def test_background_recorded_when_created_then_completed_by_get(rc, store):
    created = rc.interactions.create(model=MODEL, input="Research cricket history.", background=True)
    row = store.get(created.id)
    assert row.background is True
    assert row.status in ("in_progress", "queued")
    done = _finish(rc, created.id)
    assert done.status == "completed"
    row = store.get(created.id)
    assert row.status == "completed"
    assert row.output_text
    assert row.input_text == "Research cricket history."  # the create's request is kept
    assert row.server_state == "live"
    assert _ids(store) == {created.id}


def test_async_background_and_get(arc, store):
    async def go():
        created = await arc.interactions.create(model=MODEL, input="Research tennis history.", background=True)
        got = created
        for _ in range(500):
            got = await arc.interactions.get(created.id)
            if got.status == "completed":
                break
            await asyncio.sleep(0.01)
        return created.id

    iid = run(go())
    assert store.get(iid).status == "completed"


def test_get_of_an_expired_id_marks_it(rc, store, sandbox):
    out = rc.interactions.create(model=MODEL, input="Remember this.")
    sandbox.expire(out.id)
    with pytest.raises(Exception):
        rc.interactions.get(out.id)
    assert store.get(out.id).server_state == "expired"


def test_cancel_updates_status(rc, store, sandbox):
    sandbox.background_delay = 3600  # still running when the cancel arrives, however loaded the machine
    created = rc.interactions.create(model=MODEL, input="A long research task.", background=True)
    rc.interactions.cancel(created.id)
    assert store.get(created.id).status == "cancelled"


def test_delete_marks_deleted(rc, store):
    out = rc.interactions.create(model=MODEL, input="Forget me.")
    rc.interactions.delete(out.id)
    row = store.get(out.id)
    assert row.server_state == "deleted"
    assert row.output_text  # the archive keeps it


def test_a_deleted_interaction_stays_deleted_when_a_later_get_or_delete_finds_it_gone(rc, store):
    out = rc.interactions.create(model=MODEL, input="Forget me.")
    rc.interactions.delete(out.id)
    with pytest.raises(Exception):
        rc.interactions.get(out.id)  # 404: the server no longer has it
    with pytest.raises(Exception):
        rc.interactions.delete(out.id)
    store.flush()
    assert store.get(out.id).server_state == "deleted"  # not 'expired': we know why it is gone


def test_async_cancel_and_delete(arc, store, sandbox):
    sandbox.background_delay = 3600  # still running when the cancel arrives, however loaded the machine

    async def go():
        created = await arc.interactions.create(model=MODEL, input="A long research task.", background=True)
        await arc.interactions.cancel(created.id)
        plain = await arc.interactions.create(model=MODEL, input="Forget me.")
        await arc.interactions.delete(plain.id)
        return created.id, plain.id

    cancelled, deleted = run(go())
    assert store.get(cancelled).status == "cancelled"
    assert store.get(deleted).server_state == "deleted"


# --- continuation hops --------------------------------------------------------------------


def test_continuation_hops_are_linked_records(rc, store, sandbox):
    out = rc.interactions.create(model=MODEL, input="Write a very long essay. [continue:2]")
    hops = out.continuation_ids
    assert len(hops) == 3
    rows = [store.get(h) for h in hops]
    assert [r.hop_index for r in rows] == [0, 1, 2]
    assert rows[0].link in (None, "root")
    assert [(r.parent_id, r.link) for r in rows[1:]] == [(hops[0], "continuation"), (hops[1], "continuation")]
    assert _ids(store) == set(hops)


def test_async_continuation_hops(arc, store, sandbox):
    out = run(arc.interactions.create(model=MODEL, input="Write a very long essay. [continue:2]"))
    assert [store.get(h).hop_index for h in out.continuation_ids] == [0, 1, 2]


def test_streamed_continuation_hops(rc, store, sandbox):
    stream = rc.interactions.create(model=MODEL, input="Write a very long essay. [continue:2]", stream=True)
    list(stream)
    rows = sorted(store.list(limit=None), key=lambda r: r.hop_index)
    assert [r.hop_index for r in rows] == [0, 1, 2]
    assert [r.parent_id for r in rows[1:]] == [rows[0].id, rows[1].id]
    assert all(r.partial is False for r in rows)


# --- retries and failures -----------------------------------------------------------------


@pytest.mark.parametrize("status", [503, 429])
def test_sdk_retry_is_one_record(store, sandbox, status):
    rc = convostore.record(_client(sandbox, attempts=3), store=store)
    sandbox.fail(status, 1)
    out = rc.interactions.create(model=MODEL, input="Hello after a hiccup.")
    assert _ids(store) == {out.id}
    assert store.get(out.id).status == "completed"


def test_async_sdk_retry_is_one_record(store, sandbox):
    arc = convostore.record(_client(sandbox, attempts=3), store=store).aio
    sandbox.fail(503, 1)
    out = run(arc.interactions.create(model=MODEL, input="Hello after a hiccup."))
    assert _ids(store) == {out.id}


def test_failing_create_is_one_failed_record(store, sandbox):
    rc = convostore.record(_client(sandbox, attempts=2), store=store)
    sandbox.fail(503, 10)
    with pytest.raises(Exception):
        rc.interactions.create(model=MODEL, input="This will not work.")
    (iid,) = _ids(store)
    row = store.get(iid)
    assert iid.startswith("local-")
    assert row.status == "failed"
    assert row.input_text == "This will not work."
    assert row.error and (row.error.get("status") == 503 or "503" in str(row.error))


def test_async_failing_create_is_one_failed_record(store, sandbox):
    arc = convostore.record(_client(sandbox, attempts=1), store=store).aio
    sandbox.fail(503, 10)
    with pytest.raises(Exception):
        run(arc.interactions.create(model=MODEL, input="This will not work."))
    (iid,) = _ids(store)
    assert store.get(iid).status == "failed"


def test_unknown_previous_id_raises_the_sdks_error_and_records_the_failure(rc, store):
    with pytest.raises(Exception) as info:
        rc.interactions.create(model=MODEL, input="Continue.", previous_interaction_id="v1_nobody_knows_me")
    assert "convostore" not in type(info.value).__module__
    (iid,) = _ids(store)
    assert store.get(iid).status == "failed"


# --- resume hook (the rebuild itself is tested in test_resume.py) -------------------------


def test_resume_false_lets_the_sdk_error_through(client, store, sandbox):
    rc = convostore.record(client, store=store, resume=False)
    t1 = rc.interactions.create(model=MODEL, input="Hi, my name is Karthik.")
    sandbox.expire()
    with pytest.raises(Exception):
        rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t1.id)


def test_resume_logs_the_rebuild(rc, store, sandbox, caplog):
    t1 = rc.interactions.create(model=MODEL, input="Hi, my name is Karthik.")
    sandbox.expire()
    with caplog.at_level(logging.INFO, logger="convostore"):
        t2 = rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t1.id)
    assert any(r.name == "convostore" and r.getMessage().startswith(f"chain {t1.id} rebuilt from 1 stored turns") for r in caplog.records)
    assert (store.get(t2.id).parent_id, store.get(t2.id).link) == (t1.id, "rebuilt")


def test_resume_in_a_stream(rc, store, sandbox):
    t1 = rc.interactions.create(model=MODEL, input="Hi, my name is Karthik.")
    sandbox.expire()
    text = _stream_text(rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t1.id, stream=True))
    assert "Karthik" in text
    (row,) = [r for r in store.list(limit=None) if r.id != t1.id]
    assert (row.parent_id, row.link) == (t1.id, "rebuilt")


# --- annotate -----------------------------------------------------------------------------


def test_annotate_merges_fields_into_rows_of_this_context_only(client, store):
    rc = convostore.record(client, store=store, labels={"app": "tests"})
    with annotate(labels={"run": "a"}, source_id="src-1"):
        inside = rc.interactions.create(model=MODEL, input="inside")
        with annotate(labels={"step": "2"}):
            nested = rc.interactions.create(model=MODEL, input="nested")
    outside = rc.interactions.create(model=MODEL, input="outside")
    assert store.get(inside.id).labels == {"app": "tests", "run": "a"}
    assert store.get(inside.id).source_id == "src-1"
    assert store.get(nested.id).labels == {"app": "tests", "run": "a", "step": "2"}
    assert store.get(outside.id).labels == {"app": "tests"}
    assert store.get(outside.id).source_id is None


def test_annotate_is_per_asyncio_task(arc, store):
    async def one(tag: str) -> str:
        with annotate(labels={"task": tag}):
            await asyncio.sleep(0)
            return (await arc.interactions.create(model=MODEL, input=f"task {tag}")).id

    async def go():
        return await asyncio.gather(*(one(str(i)) for i in range(4)))

    ids = run(go())
    assert [store.get(i).labels for i in ids] == [{"task": str(i)} for i in range(4)]


def test_annotate_rejects_unknown_fields():
    with pytest.raises(TypeError):
        with annotate(colour="blue"):
            pass


# --- concurrency --------------------------------------------------------------------------


def test_sixteen_threads_share_one_recorded_client(rc, store):
    ids: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        try:
            with annotate(labels={"thread": str(n)}):
                prev = None
                for turn in range(3):
                    kw = {"previous_interaction_id": prev} if prev else {}
                    prev = rc.interactions.create(model=MODEL, input=f"thread {n} turn {turn}", **kw).id
                    with lock:
                        ids.append(prev)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert _ids(store) == set(ids) and len(ids) == 48
    for iid in ids:
        row = store.get(iid)
        n = row.input_text.split()[1]
        assert row.labels == {"thread": n}
        assert len(store.chain(iid)) == int(row.input_text.split()[-1]) + 1


# --- secrets ------------------------------------------------------------------------------


def test_the_api_key_never_reaches_the_database(sqlite_store, sandbox):
    key = "AIzaSy-very-secret-key-0123456789"
    rc = convostore.record(_client(sandbox, key=key), store=sqlite_store)
    t1 = rc.interactions.create(model=MODEL, input="Hi.")
    rc.interactions.create(model=MODEL, input="Again.", previous_interaction_id=t1.id, stream=False)
    list(rc.interactions.create(model=MODEL, input="Stream.", stream=True))
    rc.interactions.get(t1.id)
    sandbox.fail(503, 10)
    with pytest.raises(Exception):
        convostore.record(_client(sandbox, key=key, attempts=1), store=sqlite_store).interactions.create(model=MODEL, input="x")
    path = sqlite_store.path
    blob = b""
    for suffix in ("", "-wal", "-shm", "-journal"):
        try:
            blob += open(f"{path}{suffix}", "rb").read()
        except FileNotFoundError:
            pass
    assert blob
    assert key.encode() not in blob
    assert b"x-goog-api-key" not in blob.lower()
    assert b"authorization" not in blob.lower()


# --- store failures -----------------------------------------------------------------------


def _break(store) -> None:
    """A store that cannot write any more (as after a disk failure): its engine is gone."""
    store.close()


def test_store_failure_does_not_break_the_call(client, sqlite_store, caplog):
    rc = convostore.record(client, store=sqlite_store)
    _break(sqlite_store)
    with caplog.at_level(logging.WARNING, logger="convostore"):
        out = rc.interactions.create(model=MODEL, input="Still works.")
        text = _stream_text(rc.interactions.create(model=MODEL, input="Stream still works.", stream=True))
    assert out.id and text
    assert "recording failed" in caplog.text


def test_store_failure_strict_raises(client, sqlite_store):
    rc = convostore.record(client, store=sqlite_store, strict=True)
    _break(sqlite_store)
    with pytest.raises(convostore.errors.ConvostoreError):
        rc.interactions.create(model=MODEL, input="Must be archived.")
    with pytest.raises(convostore.errors.ConvostoreError):
        list(rc.interactions.create(model=MODEL, input="Must be archived too.", stream=True))


def test_async_store_failure_strict_and_not(client, sqlite_store, caplog):
    lenient = convostore.record(client, store=sqlite_store).aio
    _break(sqlite_store)
    with caplog.at_level(logging.WARNING, logger="convostore"):
        out = run(lenient.interactions.create(model=MODEL, input="Still works."))
    assert out.id
    strict = convostore.record(client, store=sqlite_store, strict=True).aio
    with pytest.raises(convostore.errors.ConvostoreError):
        run(strict.interactions.create(model=MODEL, input="Must be archived."))


def test_record_twice_replaces_the_recorder(client, store, sqlite_store):
    convostore.record(client, store=sqlite_store)
    rc = convostore.record(client, store=store)
    out = rc.interactions.create(model=MODEL, input="Where do I go?")
    assert store.get(out.id)
    if store is not sqlite_store:
        with pytest.raises(NotFoundError):
            sqlite_store.get(out.id)
