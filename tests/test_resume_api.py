"""The resume module's helpers as a library user calls them: ``continue_chain`` (what the
``resume`` command sends), ``chat_head`` (where ``chat`` picks up) and ``refresh``.

Through a recorded SDK client on the sandbox; ``sandbox.requests`` holds what was sent.
"""

from __future__ import annotations

import orjson
import pytest

import convostore
from convostore import resume
from convostore.archive import import_jsonl

from .fixtures_sandbox import make_client

MODEL = "gemini-2.5-flash"
OTHER_MODEL = "gemini-2.5-pro"
AGENT = "deep-research-pro-preview-12-2025"
WEATHER = [{"type": "function", "name": "get_weather", "description": "Weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]


@pytest.fixture
def rc(client, sqlite_store):
    return convostore.record(client, store=sqlite_store)


def _flush(store) -> None:
    store.flush()


def test_continue_chain_sends_the_turns_settings_and_keeps_an_agent_an_agent(rc, sqlite_store, sandbox, tmp_path):
    store = sqlite_store
    t1 = rc.interactions.create(model=MODEL, input="My name is Ada.", tools=WEATHER, system_instruction="Be brief.",
                                generation_config={"temperature": 0.1})
    _flush(store)
    resume.continue_chain(store, rc, t1.id, "What is my name?")
    sent = sandbox.requests[-1]
    assert (sent["model"], sent["previous_interaction_id"], sent["input"]) == (MODEL, t1.id, "What is my name?")
    assert sent["system_instruction"] == "Be brief." and sent["generation_config"]["temperature"] == 0.1
    assert [t["name"] for t in sent["tools"]] == ["get_weather"] and "stream" not in sent
    events = list(resume.continue_chain(store, rc, t1.id, "Once more?", stream=True))
    assert sandbox.requests[-1].get("stream") is True and events

    # An agent turn archived with a model's generation_config (sent raw, then imported):
    # continuing it stays an agent call, without the setting the SDK refuses for agents.
    line = {"convostore": 1, "api_version": "v1",
            "request": {"agent": AGENT, "input": "My name is Bo.", "system_instruction": "Be brief.",
                        "generation_config": {"temperature": 0.1}},
            "response": {"id": "v1_agent_turn", "agent": AGENT, "status": "completed", "created": "2026-01-01T00:00:00Z",
                         "steps": [{"type": "model_output", "content": [{"type": "text", "text": "Hello Bo."}]}]}}
    path = tmp_path / "agent.jsonl"
    path.write_bytes(orjson.dumps(line) + b"\n")
    import_jsonl(store, path)
    answer = resume.continue_chain(store, rc, "v1_agent_turn", "What is my name?")
    sent = sandbox.requests[-1]
    assert sent["agent"] == AGENT and "model" not in sent
    assert "generation_config" not in sent and sent["system_instruction"] == "Be brief."
    assert "Your name is Bo" in answer.steps[-1].content[0].text  # rebuilt from the archive: the server never had it
    resume.continue_chain(store, rc, "v1_agent_turn", "And now?", model=OTHER_MODEL)
    sent = sandbox.requests[-1]
    assert sent["model"] == OTHER_MODEL and "agent" not in sent and sent["generation_config"]["temperature"] == 0.1


def test_chat_head_picks_up_where_asked(rc, sqlite_store):
    store = sqlite_store
    assert resume.chat_head(store, latest=True) is None  # an empty archive: a new chat
    t1 = rc.interactions.create(model=MODEL, input="My name is Ada.")
    t2 = rc.interactions.create(model=MODEL, input="I like tennis.", previous_interaction_id=t1.id)
    t3 = rc.interactions.create(model=MODEL, input="Tell me more.", previous_interaction_id=t2.id)
    other = rc.interactions.create(model=MODEL, input="Something else.")
    _flush(store)
    assert resume.chat_head(store) is None  # neither asked: a new chat
    assert resume.chat_head(store, latest=True) == other.id
    assert resume.chat_head(store, interaction_id=t1.id) == t3.id  # a conversation id: its newest turn
    assert resume.chat_head(store, interaction_id=t2.id) == t2.id  # a turn: that turn
    assert resume.chat_head(store, latest=True, interaction_id=t2.id) == t2.id  # the id wins


def test_refresh_counts_what_it_found_and_marks_what_the_server_forgot(rc, sqlite_store, sandbox):
    store = sqlite_store
    kept = rc.interactions.create(model=MODEL, input="My name is Ada.")
    working = rc.interactions.create(model=MODEL, input="Research cricket.", background=True)
    forgotten = rc.interactions.create(model=MODEL, input="Something else.")
    _flush(store)
    assert store.get(working.id).status != "completed"
    sandbox.expire(forgotten.id)
    sandbox.settle()  # the background job finishes now

    found = resume.refresh(store, rc)
    assert (found.checked, found.live, found.gone, found.completed) == (3, 2, 1, 1)
    _flush(store)
    assert store.get(forgotten.id).server_state == "expired" and store.get(working.id).status == "completed"
    again = resume.refresh(store, rc)  # only the live ones, and nothing newly completed
    assert (again.checked, again.live, again.gone, again.completed) == (2, 2, 0, 0)
    assert resume.refresh(store, rc, [kept.id]).checked == 1

    sandbox.fail(500, 4)  # not a lost chain: the error is the caller's
    with pytest.raises(Exception):
        resume.refresh(store, rc, [kept.id])
    _flush(store)
    assert store.get(kept.id).server_state == "live"

    bare = make_client(sandbox.base_url)  # not recorded: refresh marks what the server forgot itself
    sandbox.expire(kept.id)
    assert resume.refresh(store, bare, [kept.id]).gone == 1
    bare.close()
    assert store.get(kept.id).server_state == "expired"


def test_rebuilt_kwargs_replaces_the_server_chain_with_its_history(rc, sqlite_store):
    t1 = rc.interactions.create(model=MODEL, input="My name is Ada.", system_instruction="Be brief.")
    sqlite_store.flush()
    kwargs = {"input": "What is my name?", "previous_interaction_id": t1.id}
    out = resume.rebuilt_kwargs(sqlite_store, kwargs)
    assert "previous_interaction_id" not in out and kwargs["previous_interaction_id"] == t1.id  # a copy
    assert out["model"] == MODEL and out["system_instruction"] == "Be brief."
    assert [s["type"] for s in out["input"]] == ["user_input", "model_output", "user_input"]
    assert out["input"][-1]["content"][0]["text"] == "What is my name?"
    turns = resume.rebuilt_kwargs(sqlite_store, kwargs, format="turns")["input"]
    assert [t["role"] for t in turns] == ["user", "model", "user"]
