"""Replay stored conversations on another model, and compare the runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson
import pytest

import convostore
from convostore import wire
from convostore.comparison import compare, similarity
from convostore.replaying import replay
from convostore.report import render

SOURCE = "gemini-2.5-flash"
TARGET = "gemini-2.5-pro"
TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]


@pytest.fixture
def rc(client, store):
    return convostore.record(client, store=store)


@pytest.fixture(params=[True, False], ids=["direct", "sdk"])
def direct(request):
    """Replay sends raw wire JSON through the client's connection, or through the SDK's create."""
    return request.param


def _conversation(rc):
    t1 = rc.interactions.create(model=SOURCE, input="Hi, my name is Karthik.")
    t2 = rc.interactions.create(model=SOURCE, input="I like cricket.", previous_interaction_id=t1.id)
    t3 = rc.interactions.create(model=SOURCE, input="What is my name?", previous_interaction_id=t2.id)
    return [t1, t2, t3]


def _creates_since(sandbox, n):
    return sandbox.requests[n:]


def test_forced_mode_sends_the_original_history_at_every_turn(rc, store, sandbox, direct):
    src = _conversation(rc)
    n = len(sandbox.requests)
    run = replay(store, src[-1].id, model=TARGET, mode="forced", client=rc, concurrency=1, direct=direct)
    sent = _creates_since(sandbox, n)
    assert len(sent) == 3
    assert all(body["model"] == TARGET and "previous_interaction_id" not in body for body in sent)
    # Turn k carries the ORIGINAL answers of turns 1..k-1.
    originals = [store.get(t.id).output_text for t in src]
    for k, body in enumerate(sent):
        steps = wire.normalize_input(body["input"])
        assert wire.output_text(steps).split("\n") == (originals[:k] if k else [""])
    replayed = list(store.list(replay_run_id=run.id))
    assert len(replayed) == 3 and {r.source_id for r in replayed} == {t.id for t in src}
    assert "Karthik" in next(r for r in replayed if r.source_id == src[2].id).output_text
    assert run.status == "completed"
    # Replayed turns stay out of the original conversation.
    assert all(r.conversation_id != src[0].id for r in replayed)
    assert [r.id for r in store.tree(src[0].id)] == [t.id for t in src]


def test_forced_turns_run_in_parallel_and_are_chained_in_source_order(rc, store, sandbox):
    src = _conversation(rc)
    run = replay(store, src[-1].id, model=TARGET, mode="forced", client=rc, concurrency=3)
    by_source = {r.source_id: r for r in store.list(replay_run_id=run.id)}
    last = by_source[src[2].id]
    assert [r.source_id for r in store.chain(last.id)] == [t.id for t in src]
    assert by_source[src[0].id].parent_id is None and by_source[src[1].id].parent_id == by_source[src[0].id].id
    assert len({r.conversation_id for r in by_source.values()}) == 1


def test_free_mode_builds_its_own_chain(rc, store, sandbox, direct):
    src = _conversation(rc)
    n = len(sandbox.requests)
    run = replay(store, src[-1].id, model=TARGET, mode="free", client=rc, direct=direct)
    sent = _creates_since(sandbox, n)
    replayed = {r.source_id: r for r in store.list(replay_run_id=run.id)}
    assert "previous_interaction_id" not in sent[0]
    assert sent[1]["previous_interaction_id"] == replayed[src[0].id].id
    assert sent[2]["previous_interaction_id"] == replayed[src[1].id].id
    assert "Karthik" in replayed[src[2].id].output_text


def test_function_call_matched_gets_the_recorded_result(rc, store, sandbox, direct):
    t1 = rc.interactions.create(model=SOURCE, input="Please use get_weather for Paris.", tools=TOOLS)
    call = next(s for s in store.get(t1.id).output_steps if s["type"] == "function_call")
    t2 = rc.interactions.create(model=SOURCE, tools=TOOLS, previous_interaction_id=t1.id,
                                input=[{"type": "function_result", "call_id": call["id"], "name": "get_weather", "result": "sunny, 21C"}])
    n = len(sandbox.requests)
    run = replay(store, t2.id, model=TARGET, mode="free", client=rc, direct=direct)
    sent = _creates_since(sandbox, n)
    replayed = {r.source_id: r for r in store.list(replay_run_id=run.id)}
    assert (replayed[t1.id].labels or {}).get("replay_verdict") != "diverged"
    target_call = next(s for s in replayed[t1.id].output_steps if s["type"] == "function_call")
    result = wire.normalize_input(sent[1]["input"])[0]
    assert result["type"] == "function_result" and result["result"] == "sunny, 21C"
    assert result["call_id"] == target_call["id"]
    assert "sunny" in replayed[t2.id].output_text


def test_function_call_departed_is_marked_diverged_and_free_mode_stops(rc, store, sandbox):
    t1 = rc.interactions.create(model=SOURCE, input="Please use get_weather for Paris.", tools=TOOLS)
    call = next(s for s in store.get(t1.id).output_steps if s["type"] == "function_call")
    t2 = rc.interactions.create(model=SOURCE, tools=TOOLS, previous_interaction_id=t1.id,
                                input=[{"type": "function_result", "call_id": call["id"], "name": "get_weather", "result": "sunny"}])
    run = replay(store, t2.id, model=TARGET, mode="free", client=rc, overrides={"tools": None})
    rows = list(store.list(replay_run_id=run.id))
    assert len(rows) == 1  # stopped at the divergence
    assert rows[0].labels.get("replay_verdict") == "diverged"
    assert run.summary["verdicts"].get("diverged") == 1
    c = compare(store, run.id)
    assert c.turns[0].replays[run.id].status == "diverged"
    assert c.turns[1].replays[run.id].status == "missing"


def test_injected_faults_are_retried(rc, store, sandbox, direct):
    src = _conversation(rc)
    sandbox.fail(503, 2)
    run = replay(store, src[-1].id, model=TARGET, client=rc, concurrency=1, backoff=0.01, direct=direct)
    assert run.summary["verdicts"] == {"ok": 3}
    sandbox.fail(429, 2)
    run = replay(store, src[-1].id, model=TARGET, client=rc, concurrency=1, backoff=0.01, direct=direct)
    assert run.summary["verdicts"] == {"ok": 3}
    # A retried attempt is not a row: exactly one answer per source turn, no failed rows.
    assert sorted(r.status for r in store.list(replay_run_id=run.id)) == ["completed"] * 3


def test_a_turn_that_keeps_failing_is_one_failed_row_and_the_run_goes_on(rc, store, sandbox):
    src = _conversation(rc)
    sandbox.fail(503, 3)  # every attempt of the first turn (max_attempts=3)
    run = replay(store, src[-1].id, model=TARGET, client=rc, concurrency=1, backoff=0.01, max_attempts=3)
    assert run.status == "completed_with_failures"
    assert run.summary["verdicts"] == {"failed": 1, "ok": 2}
    failed = [r for r in store.list(replay_run_id=run.id) if r.status == "failed"]
    assert len(failed) == 1
    assert all(r.source_id == src[0].id and r.error and r.error.get("status") == 503 for r in failed)
    assert failed[0].request["model"] == TARGET
    if store.path:  # the key the client sends (fixtures: "test-key") reaches no byte of the archive
        blob = b"".join(Path(store.path + suffix).read_bytes() for suffix in ("", "-wal") if Path(store.path + suffix).exists())
        assert blob and b"test-key" not in blob and b"x-goog-api-key" not in blob.lower()


def test_direct_replay_follows_continuation_hops(rc, store, sandbox):
    t1 = rc.interactions.create(model=SOURCE, input="Hi, my name is Karthik.")
    t2 = rc.interactions.create(model=SOURCE, input="Write a very long essay. [continue:2]", previous_interaction_id=t1.id)
    assert t2.status == "completed"
    t3 = rc.interactions.create(model=SOURCE, input="What is my name?", previous_interaction_id=t2.id)
    n = len(sandbox.requests)
    run = replay(store, t3.id, model=TARGET, mode="free", client=rc, direct=True)
    assert run.summary["verdicts"] == {"ok": 3} and run.summary["turns"] == 3  # hops fold into their turn
    assert [link for _, link in store.chain_links(t3.id)] == ["root", "server", "continuation", "continuation", "server"]
    sent = _creates_since(sandbox, n)
    assert len(sent) == 5  # turn 2 took three hops, the later two carrying the token and no input
    assert [("continuation_token" in b, "input" in b) for b in sent[1:4]] == [(False, True), (True, False), (True, False)]
    rows = list(store.list(replay_run_id=run.id, oldest_first=True))
    turn2 = store.chain(t2.id)[1]  # the source turn is its first hop; the later hops fold into it
    assert turn2.hop_index == 0
    hops = [r for r in rows if r.source_id == turn2.id]
    assert [r.hop_index for r in hops] == [0, 1, 2] and [r.link for r in hops[1:]] == ["continuation"] * 2
    last = next(r for r in rows if r.source_id == t3.id)
    assert last.previous_interaction_id == hops[-1].id and "Karthik" in last.output_text


def test_direct_free_replay_without_server_state_rebuilds_every_turn(rc, store, sandbox):
    src = _conversation(rc)
    n = len(sandbox.requests)
    run = replay(store, src[-1].id, model=TARGET, mode="free", client=rc, store_remote=False, direct=True)
    sent = _creates_since(sandbox, n)
    assert all(b.get("store") is False and "previous_interaction_id" not in b for b in sent)
    assert [len(wire.normalize_input(b["input"])) for b in sent] == [1, 3, 5]  # own history, rebuilt
    replayed = {r.source_id: r for r in store.list(replay_run_id=run.id)}
    assert replayed[src[1].id].link == "rebuilt" and replayed[src[1].id].parent_id == replayed[src[0].id].id
    assert "Karthik" in replayed[src[2].id].output_text


def test_direct_sending_is_declined_for_clients_it_cannot_serve(client, rc):
    from convostore.direct import DirectSender

    assert DirectSender.for_client(client) is not None  # rc recorded this very client object
    from google import genai

    assert DirectSender.for_client(genai.Client(api_key="k")) is None  # not recorded: nothing would be stored


def test_compare_in_every_format(rc, store, sandbox, tmp_path):
    src = _conversation(rc)
    run = replay(store, src[-1].id, model=TARGET, client=rc)
    c = compare(store, src[1].id)  # any interaction of the source chain finds its runs
    assert [r.id for r in c.runs] == [run.id]
    assert len(c.turns) == 3
    for t in c.turns:
        assert 0.0 <= t.replays[run.id].similarity <= 1.0
    table = render(c, "table")
    assert "What is my name?" in table and TARGET in table
    md = render(c, "markdown")
    assert md.count("\n| ") >= 4
    data = orjson.loads(render(c, "json"))
    assert len(data["conversation"]["turns"]) == 3 and run.id in data["totals"]
    page = render(c, "html")
    assert page.count('class="turn"') == 3 and "<svg" in page
    assert "http://" not in page and "https://" not in page  # self-contained


def test_similarity_is_symmetric_bounded_and_exact_on_equal_text():
    assert similarity("a b c", "a b c") == 1.0
    assert similarity("a b c", "x y z") == 0.0
    assert similarity("the cat sat", "the dog sat") == similarity("the dog sat", "the cat sat")


def test_a_killed_run_resumes_without_resending_completed_turns(store, tmp_path):
    """A replay process killed midway (SIGKILL) is continued with --resume RUN_ID."""
    import signal
    import time

    from google import genai
    from google.genai import types

    from convostore.sandbox import Sandbox

    if store.url.startswith("postgresql"):
        db = store.url
    else:
        db = store.url.removeprefix("sqlite:///")
    with Sandbox() as sb:
        rc = convostore.record(genai.Client(api_key="k", http_options=types.HttpOptions(base_url=sb.base_url)), store=store)
        prev = None
        for i in range(6):
            kwargs = {"previous_interaction_id": prev} if prev else {}
            prev = rc.interactions.create(model=SOURCE, input=f"turn {i}: my name is Ada", **kwargs).id
        env = dict(os.environ, GEMINI_API_KEY="k", GOOGLE_GEMINI_BASE_URL=sb.base_url)
        sb.hold(after=2)  # two turns answered, the third kept waiting: the kill lands at an exact point
        proc = subprocess.Popen([sys.executable, "-m", "convostore", "--db", db, "replay", prev, "--model", TARGET, "--concurrency", "1"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        run_id = None
        while time.monotonic() < deadline and proc.poll() is None:  # wait on the condition, not a clock
            runs = store.list_runs()
            run_id = runs[0].id if runs else None
            if run_id and sb.held and len(list(store.list(replay_run_id=run_id))) >= 2:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        sb.release()
        assert run_id is not None, proc.stderr.read().decode()
        done_before = {r.source_id for r in store.list(replay_run_id=run_id) if r.status == "completed"}
        assert len(done_before) == 2
        sent_before = sum(1 for b in sb.requests if b.get("model") == TARGET)

        run = replay(store, resume_run=run_id, client=rc)
        sent_after = sum(1 for b in sb.requests if b.get("model") == TARGET) - sent_before
        assert sent_after == 6 - len(done_before)  # no completed turn sent again
        rows = [r for r in store.list(replay_run_id=run_id) if r.status == "completed"]
        assert sorted(r.source_id for r in rows) == sorted({r.source_id for r in rows})  # one answer per turn
        assert len(rows) == 6 and run.status == "completed"


def test_direct_replay_retries_a_server_that_does_not_answer_then_records_one_failure(store, caplog):
    import logging
    import socket

    from google import genai
    from google.genai import types

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc = convostore.record(genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=f"http://127.0.0.1:{port}")), store=store)
    store.save({"id": "src-1", "request": {"model": SOURCE, "input": "Hi"}, "input_steps": wire.normalize_input("Hi"),
                "output_steps": [], "model": SOURCE, "status": "completed"})
    with caplog.at_level(logging.INFO, logger="convostore"):
        run = replay(store, "src-1", model=TARGET, client=rc, max_attempts=3, backoff=0.01)
    assert sum("retrying" in r.getMessage() for r in caplog.records) == 2  # three attempts in all
    assert run.summary["verdicts"] == {"failed": 1}
    failed = list(store.list(replay_run_id=run.id))
    assert len(failed) == 1 and failed[0].status == "failed" and "ConnectError" in failed[0].error["message"]
