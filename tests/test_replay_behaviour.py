"""Replay behaviours a user relies on when a run meets failures, rate limits, thoughts and tools.

Each test drives the real SDK against the sandbox through ``convostore.replay``, and
was watched failing with the behaviour broken on purpose (see bench/mutation-survivors.md).
"""

from __future__ import annotations

import io

import orjson
import pytest
from google import genai
from google.genai import types

import convostore
from convostore import wire
from convostore.archive import import_jsonl
from convostore import compare, history, replay

from tests.test_replay import SOURCE, TARGET, TOOLS, rc  # noqa: F401 - rc is a fixture

THINKING = "gemini-3-flash-preview"  # the sandbox's gemini-3 models emit signed thought steps


@pytest.fixture
def unretried(client, store, sandbox):
    """A recorded client whose SDK does not retry: every 429/5xx reaches replay's own retry loop."""
    plain = genai.Client(api_key="test-key", http_options=types.HttpOptions(
        base_url=sandbox.base_url, retry_options=types.HttpRetryOptions(attempts=1)))
    yield convostore.record(plain, store=store)
    plain.close()


@pytest.fixture(params=["forced", "free"])
def mode(request):
    return request.param


def _conversation(rc, model=SOURCE):
    t1 = rc.interactions.create(model=model, input="Hi, my name is Karthik.")
    t2 = rc.interactions.create(model=model, input="I like cricket.", previous_interaction_id=t1.id)
    t3 = rc.interactions.create(model=model, input="What is my name?", previous_interaction_id=t2.id)
    return [t1, t2, t3]


def _by_source(store, run_id, status="completed"):
    return {r.source_id: r for r in store.list(replay_run_id=run_id) if r.status == status}


def _fail_turn(sandbox, n, attempts):
    """A progress callback that makes every attempt of the turn after the ``n``-th fail."""

    def progress(done, total):
        if done == n:
            sandbox.fail(503, attempts)

    return progress


def test_a_resumed_run_resends_its_failed_turns_and_ends_completed(rc, store, sandbox, mode):
    src = _conversation(rc)
    n = len(sandbox.requests)
    run = replay(store, src[-1].id, model=TARGET, mode=mode, client=rc, concurrency=1, backoff=0,
                 max_attempts=2, progress=_fail_turn(sandbox, 1, 2))
    assert run.status == "completed_with_failures"
    first = _by_source(store, run.id)
    # Turn 2 failed; in free mode turn 3 waits for it (it continues turn 2's answer).
    resend = [src[1]] if mode == "forced" else [src[1], src[2]]
    assert set(first) == {t.id for t in src} - {t.id for t in resend}
    sent_before = len(sandbox.requests)

    resumed = replay(store, resume_run=run.id, client=rc)
    assert resumed.id == run.id and resumed.status == "completed"
    sent = sandbox.requests[sent_before:]
    assert len(sent) == len(resend) and all(b["model"] == TARGET for b in sent)  # no completed turn sent again
    assert [wire.input_text(wire.normalize_input(b["input"])[-1:]) for b in sent] == [t.input_text for t in (store.get(r.id) for r in resend)]
    done = _by_source(store, run.id)
    assert set(done) == {t.id for t in src} and all(done[k].id == first[k].id for k in first)
    # The resumed run is one chain again, in source order, and compare shows no failure.
    assert [r.source_id for r in store.chain(done[src[2].id].id)] == [t.id for t in src]
    assert "Karthik" in done[src[2].id].output_text
    c = compare(store, run.id)
    assert [t.replays[run.id].status for t in c.turns] == ["completed"] * 3
    assert c.totals()[run.id]["failed"] == 0
    assert len(sandbox.requests) - n == 5  # forced: t1, t2 twice, t3, then t2; free: t1, t2 twice, then t2, t3


def test_a_failed_middle_turn_does_not_splice_the_forced_chain(rc, store, sandbox):
    src = _conversation(rc)
    run = replay(store, src[-1].id, model=TARGET, mode="forced", client=rc, concurrency=1, backoff=0,
                 max_attempts=2, progress=_fail_turn(sandbox, 1, 2))
    assert run.summary["verdicts"] == {"ok": 2, "failed": 1}
    done = _by_source(store, run.id)
    third = done[src[2].id]
    assert third.parent_id is None  # not linked to turn 1 across the missing turn 2
    assert [r.source_id for r in store.chain(third.id)] == [src[2].id]
    assert done[src[0].id].parent_id is None
    assert [r.id for r in store.children(done[src[0].id].id)] == []


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "sdk"])
def test_retry_after_is_waited_for(store, sandbox, unretried, direct):
    rc = unretried
    src = rc.interactions.create(model=SOURCE, input="Hi, my name is Ada.")
    waits: list[float] = []
    sandbox.fail(429, 2, retry_after=7)
    run = replay(store, src.id, model=TARGET, client=rc, backoff=0.001, direct=direct, sleep=waits.append)
    assert waits == [7.0, 7.0]  # the server's advice, not the 1 ms backoff
    assert run.summary["verdicts"] == {"ok": 1}
    assert [b["model"] for b in sandbox.requests[-3:]] == [TARGET] * 3
    waits.clear()
    sandbox.fail(503, 2)  # no advice: exponential backoff
    replay(store, src.id, model=TARGET, client=rc, backoff=0.25, direct=direct, sleep=waits.append)
    assert waits == [0.25, 0.5]
    waits.clear()
    sandbox.fail(429, 1, retry_after=86400)  # a day: capped, the run does not stall for it
    replay(store, src.id, model=TARGET, client=rc, direct=direct, sleep=waits.append)
    assert waits == [60.0]


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "sdk"])
def test_a_bad_request_is_not_retried(store, sandbox, unretried, direct):
    rc = unretried
    src = rc.interactions.create(model=SOURCE, input="Hi, my name is Ada.")
    waits: list[float] = []
    n = len(sandbox.requests)
    sandbox.fail(400, 1)
    run = replay(store, src.id, model=TARGET, client=rc, direct=direct, sleep=waits.append)
    assert waits == [] and len(sandbox.requests) - n == 1  # one attempt: a 400 will not get better
    assert run.summary["verdicts"] == {"failed": 1} and run.status == "completed_with_failures"
    (row,) = store.list(replay_run_id=run.id)
    assert row.status == "failed" and row.error["status"] == 400


def test_forced_replay_never_sends_thought_steps_to_another_model(rc, store, sandbox):
    src = _conversation(rc, model=THINKING)
    assert any(s["type"] == "thought" for s in store.get(src[0].id).output_steps)
    n = len(sandbox.requests)
    run = replay(store, src[-1].id, model=TARGET, mode="forced", client=rc)
    sent = sandbox.requests[n:]
    assert len(sent) == 3 and run.summary["verdicts"] == {"ok": 3}
    for body in sent:
        steps = wire.normalize_input(body["input"])
        assert not [s for s in steps if s.get("type") == "thought"]
    assert all(entry["signatures_seen"] == [] for entry in sandbox.log[-3:])
    # Replayed on the model that made them, the thoughts go back byte for byte.
    n = len(sandbox.requests)
    replay(store, src[-1].id, model=THINKING, mode="forced", client=rc)
    last = max((wire.normalize_input(b["input"]) for b in sandbox.requests[n:]), key=len)  # turn 3 (turns run in parallel)
    assert sum(s.get("type") == "thought" for s in last) == 2
    assert all(entry["signatures_valid"] for entry in sandbox.log[-3:])


def test_a_conversation_begun_statelessly_with_thoughts_sends_none_to_another_model(client, store, sandbox, mode, tmp_path):
    """The first turn's own input carries another archive's history, thoughts included."""
    elsewhere = convostore.Store(tmp_path / "elsewhere.db")
    other = convostore.record(client, store=elsewhere)
    head = _conversation(other, model=THINKING)[-1]
    kwargs = history(elsewhere, head.id).create_kwargs("Do you still remember my name?")
    assert any(s.get("type") == "thought" for s in kwargs["input"])
    rc = convostore.record(client, store=store)
    first = rc.interactions.create(**kwargs)
    n = len(sandbox.requests)
    replay(store, first.id, model=TARGET, mode=mode, client=rc)
    (body,) = sandbox.requests[n:]
    steps = wire.normalize_input(body["input"])
    assert [s["type"] for s in steps if s["type"] == "user_input"] == ["user_input"] * 4
    assert not [s for s in steps if s.get("type") == "thought"]
    elsewhere.close()


def _function_source(store, arguments):
    """A recorded tool turn (as imported from another archive) whose call had ``arguments``."""
    request = {"model": SOURCE, "input": "Please use get_weather for Paris.", "tools": TOOLS}
    response = {"id": "v1_src", "status": "requires_action", "model": SOURCE, "created": "2026-11-24T12:00:00Z",
                "steps": [{"type": "function_call", "id": "call_1", "name": "get_weather", "arguments": arguments}]}
    line = {"convostore": 1, "id": "v1_src", "api_version": "v1", "request": request, "response": response}
    import_jsonl(store, io.BytesIO(orjson.dumps(line) + b"\n"))
    return "v1_src"


@pytest.mark.parametrize("arguments,verdict", [({"city": "Paris"}, "ok"), ({"city": "London"}, "diverged")],
                         ids=["same-arguments", "other-arguments"])
def test_a_function_call_with_other_arguments_is_diverged(rc, store, sandbox, mode, arguments, verdict):
    source = _function_source(store, arguments)
    run = replay(store, source, model=TARGET, mode=mode, client=rc)
    (row,) = store.list(replay_run_id=run.id)
    call = next(s for s in row.output_steps if s["type"] == "function_call")
    assert call["name"] == "get_weather" and call["arguments"] == {"city": "Paris"}
    assert run.summary["verdicts"] == {verdict: 1}
    assert (row.labels or {}).get("replay_verdict") == (None if verdict == "ok" else "diverged")
    assert compare(store, run.id).turns[0].replays[run.id].status == ("diverged" if verdict == "diverged" else row.status)
