"""``history(...).create_kwargs()``: what a user sends on a plain client to continue a chain."""

from __future__ import annotations

import gc

import convostore
from convostore import history, wire

THINKING = "gemini-3-flash-preview"
OTHER = "gemini-2.5-flash"
TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
SETTINGS = {"system_instruction": "Be brief.", "tools": TOOLS, "generation_config": {"temperature": 0.3}}


def _chain(client, store):
    rc = convostore.record(client, store=store)
    t1 = rc.interactions.create(model=THINKING, input="Hi, my name is Karthik.", **SETTINGS)
    t2 = rc.interactions.create(model=THINKING, input="I like cricket.", previous_interaction_id=t1.id, **SETTINGS)
    return t2.id


def test_create_kwargs_continue_an_expired_chain_on_a_plain_client(client, store, sandbox):
    head = _chain(client, store)
    sandbox.expire()
    h = history(store, head)
    assert h.dropped_thoughts == 0 and h.turns == 2
    answer = client.interactions.create(**h.create_kwargs("What is my name?"))  # not recorded: plain SDK
    assert "Karthik" in answer.output_text and "3 user turns" in answer.output_text
    body = sandbox.requests[-1]
    assert body["model"] == THINKING and "previous_interaction_id" not in body
    assert {k: body[k] for k in SETTINGS} == SETTINGS  # the stored settings go with it
    steps = wire.normalize_input(body["input"])
    assert [s["type"] for s in steps].count("thought") == 2  # the model's own signatures, byte for byte
    assert sandbox.log[-1]["signatures_valid"] is True
    assert wire.input_text(steps[-1:]) == "What is my name?"


def test_history_leaves_the_garbage_collector_as_it_found_it(client, store):
    """history() pauses the cyclic GC for speed; the application's setting comes back."""
    head = _chain(client, store)
    try:
        gc.enable()
        history(store, head)
        assert gc.isenabled()
        gc.disable()
        history(store, head)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_create_kwargs_for_another_model_drop_and_count_the_thoughts(client, store, sandbox):
    head = _chain(client, store)
    h = history(store, head, model=OTHER)
    assert h.model == OTHER and h.dropped_thoughts == 2
    kwargs = h.create_kwargs("What is my name?")
    assert kwargs["model"] == OTHER and not [s for s in kwargs["input"] if s.get("type") == "thought"]
    assert "Karthik" in client.interactions.create(**kwargs).output_text
    assert sandbox.log[-1]["signatures_seen"] == []
    assert history(store, head).create_kwargs()["input"] == history(store, head).input  # no new input: the history alone


def test_turns_format_appends_the_new_input_as_a_user_turn(client, store):
    head = _chain(client, store)
    h = history(store, head, format="turns")
    kwargs = h.create_kwargs("What is my name?")
    assert [t["role"] for t in kwargs["input"]] == ["user", "model", "user", "model", "user"]
    assert kwargs["input"][:-1] == h.input
