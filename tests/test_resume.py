"""Resume: a conversation does not die when the server forgets it."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

import convostore
from convostore import wire
from convostore.rebuild import history
from convostore.resume import needs_rebuild

MODEL = "gemini-2.5-flash"
THINKER = "gemini-3-flash-preview"


@pytest.fixture
def rc(client, store):
    return convostore.record(client, store=store)


def _types(body):
    return [s.get("type") for s in wire.normalize_input(body.get("input"))]


def _three_turns(rc, model=MODEL, **extra):
    t1 = rc.interactions.create(model=model, input="Hi, my name is Karthik. I like cricket.", **extra)
    t2 = rc.interactions.create(model=model, input="I also like watching movies.", previous_interaction_id=t1.id, **extra)
    t3 = rc.interactions.create(model=model, input="Which sport do I like?", previous_interaction_id=t2.id, **extra)
    return t1, t2, t3


def test_expired_chain_is_rebuilt_and_continued(rc, store, sandbox):
    t1, t2, t3 = _three_turns(rc)
    sandbox.expire()
    t4 = rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t3.id)

    row = store.get(t4.id)
    assert "Karthik" in row.output_text  # the whole history reached the model
    assert (row.parent_id, row.link) == (t3.id, "rebuilt")
    assert row.conversation_id == t1.id
    sent = sandbox.requests[-1]
    assert "previous_interaction_id" not in sent
    assert wire.input_text(wire.normalize_input(sent["input"])).count("\n") >= 3  # four user turns sent
    assert store.get(t3.id).server_state == "expired"
    assert [r.id for r in store.chain(t4.id)] == [t1.id, t2.id, t3.id, t4.id]


def test_turns_after_a_rebuild_chain_on_the_server_again(rc, store, sandbox):
    *_, t3 = _three_turns(rc)
    sandbox.expire()
    t4 = rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t3.id)
    before = len(sandbox.requests)
    t5 = rc.interactions.create(model=MODEL, input="And what is my name again?", previous_interaction_id=t4.id)
    assert len(sandbox.requests) == before + 1
    assert sandbox.requests[-1].get("previous_interaction_id") == t4.id
    assert store.get(t5.id).link == "server"
    assert "Karthik" in store.get(t5.id).output_text


def test_a_passed_expiry_estimate_saves_the_doomed_round_trip(rc, store, sandbox):
    *_, t3 = _three_turns(rc)
    store.update(t3.id, expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
    sandbox.expire()
    assert needs_rebuild(store, t3.id)
    before = len(sandbox.requests)
    t4 = rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t3.id)
    assert len(sandbox.requests) == before + 1  # no failing request first
    assert "Karthik" in store.get(t4.id).output_text


def test_store_false_conversation_lives_in_the_archive(rc, store, sandbox):
    t1, t2, t3 = _three_turns(rc, store=False)
    assert {store.get(t.id).server_state for t in (t1, t2, t3)} == {"not_stored"}
    t4 = rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t3.id, store=False)
    assert "Karthik" in store.get(t4.id).output_text
    assert all("previous_interaction_id" not in body for body in sandbox.requests)
    assert [r.id for r in store.chain(t4.id)] == [t1.id, t2.id, t3.id, t4.id]


def test_function_call_in_the_middle_survives_a_rebuild(rc, store, sandbox):
    tools = [{"type": "function", "name": "get_weather", "description": "Weather for a city",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    t1 = rc.interactions.create(model=MODEL, input="Hi, my name is Karthik.", tools=tools)
    t2 = rc.interactions.create(model=MODEL, input="Please use get_weather for Paris.", tools=tools, previous_interaction_id=t1.id)
    call = next(s for s in store.get(t2.id).output_steps if s["type"] == "function_call")
    t3 = rc.interactions.create(
        model=MODEL, tools=tools, previous_interaction_id=t2.id,
        input=[{"type": "function_result", "call_id": call["id"], "name": "get_weather", "result": "sunny, 21C"}],
    )
    sandbox.expire()
    t4 = rc.interactions.create(model=MODEL, input="What is my name?", tools=tools, previous_interaction_id=t3.id)
    sent = wire.normalize_input(sandbox.requests[-1]["input"])
    kinds = [s["type"] for s in sent if s["type"] in ("function_call", "function_result")]
    assert kinds == ["function_call", "function_result"]
    fc = next(s for s in sent if s["type"] == "function_call")
    fr = next(s for s in sent if s["type"] == "function_result")
    assert fr["call_id"] == fc["id"] == call["id"]
    assert sent.index(fc) < sent.index(fr)
    assert "Karthik" in store.get(t4.id).output_text


def test_thinking_chain_keeps_signatures_for_the_same_model_only(rc, store, sandbox):
    t1, t2, t3 = _three_turns(rc, model=THINKER)
    stored = [s["signature"] for r in store.chain(t3.id) for s in r.output_steps if s["type"] == "thought"]
    assert len(stored) == 3
    sandbox.expire()
    rc.interactions.create(model=THINKER, input="What is my name?", previous_interaction_id=t3.id)
    sent = wire.normalize_input(sandbox.requests[-1]["input"])
    assert [s["signature"] for s in sent if s["type"] == "thought"] == stored  # byte for byte

    t4b = rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t3.id)
    sent = wire.normalize_input(sandbox.requests[-1]["input"])
    assert not [s for s in sent if s["type"] == "thought"]
    assert "Karthik" in store.get(t4b.id).output_text


def test_a_branch_resumes_from_its_fork_point(rc, store, sandbox):
    t1 = rc.interactions.create(model=MODEL, input="Hi, my name is Karthik.")
    a = rc.interactions.create(model=MODEL, input="My favourite colour is blue.", previous_interaction_id=t1.id)
    b = rc.interactions.create(model=MODEL, input="My favourite colour is green.", previous_interaction_id=t1.id)
    sandbox.expire()
    rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=b.id)
    sent_text = wire.input_text(wire.normalize_input(sandbox.requests[-1]["input"]))
    assert "green" in sent_text and "blue" not in sent_text
    assert {r.id for r in store.children(t1.id)} == {a.id, b.id}


def test_unknown_id_raises_the_sdks_own_error(rc, sandbox):
    with pytest.raises(Exception) as err:
        rc.interactions.create(model=MODEL, input="hello?", previous_interaction_id="v1_unknown")
    assert getattr(err.value, "status_code", None) == 400
    assert "Invalid turn token" in str(err.value) or "Invalid turn token" in str(getattr(err.value, "body", ""))


def test_resume_false_leaves_the_error_to_the_caller(client, store, sandbox):
    rc = convostore.record(client, store=store, resume=False)
    *_, t3 = _three_turns(rc)
    sandbox.expire()
    with pytest.raises(Exception) as err:
        rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t3.id)
    assert getattr(err.value, "status_code", None) in (400, 404)


def test_streaming_turn_is_rebuilt_too(rc, store, sandbox):
    *_, t3 = _three_turns(rc)
    sandbox.expire()
    events = list(rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t3.id, stream=True))
    assert events
    assert "previous_interaction_id" not in sandbox.requests[-1]
    newest = next(iter(store.list(limit=1)))
    assert (newest.parent_id, newest.link) == (t3.id, "rebuilt")
    assert "Karthik" in newest.output_text


def test_async_turn_is_rebuilt_too(rc, store, sandbox):
    *_, t3 = _three_turns(rc)
    sandbox.expire()

    async def go():
        return await rc.aio.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t3.id)

    t4 = asyncio.run(go())
    assert store.get(t4.id).link == "rebuilt"
    assert "Karthik" in store.get(t4.id).output_text


def test_history_in_retired_turns_form(rc, store):
    *_, t3 = _three_turns(rc)
    turns = history(store, t3.id, format="turns").input
    assert [t["role"] for t in turns] == ["user", "model"] * 3
    assert turns[0]["content"][0]["text"].startswith("Hi, my name is Karthik")
