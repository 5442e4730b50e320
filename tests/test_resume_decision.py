"""Resume as a user meets it: what a rebuilt turn sends, when it is rebuilt, and when not.

Each test goes through the recorded SDK client and the sandbox (``sandbox.requests``
holds the bodies the server received); the store fixture runs it on SQLite and
PostgreSQL. The last test drives the public decision (``resume.plan``/``after_error``)
as a sender other than the SDK would (a proxy): raw wire JSON over HTTP.
"""

from __future__ import annotations

from datetime import timedelta

import logging
import sqlite3
import urllib.error
import urllib.request

import httpx
import orjson
import pytest

import convostore
from convostore import resume, wire
from convostore.archive import import_jsonl

from .fixtures_sandbox import make_client

MODEL = "gemini-2.5-flash"
OTHER_MODEL = "gemini-2.5-pro"
AGENT = "deep-research-pro-preview-12-2025"
WEATHER = [{"type": "function", "name": "get_weather", "description": "Weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
CLOCK = [{"type": "function", "name": "get_time", "description": "Time in a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]


@pytest.fixture
def rc(client, store):
    return convostore.record(client, store=store)


def _user(text: str) -> dict:
    return {"type": "user_input", "content": [{"type": "text", "text": text}]}


def _model(text: str) -> dict:
    return {"type": "model_output", "content": [{"type": "text", "text": text}]}


def _sent_texts(body: dict) -> list[str]:
    return [wire.input_text([s]) or wire.output_text([s]) for s in wire.normalize_input(body.get("input"))]


def _post(url: str, body: dict) -> tuple[int, dict]:
    """A raw POST, as a proxy would forward it."""
    request = urllib.request.Request(url, data=orjson.dumps(body), headers={"x-goog-api-key": "k", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, orjson.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def _flush(store) -> None:
    flush = getattr(store, "flush", None)
    if callable(flush):
        flush()


def test_a_conversation_begun_statelessly_keeps_its_first_history_when_rebuilt(rc, store, sandbox):
    t1 = rc.interactions.create(model=MODEL, input=[_user("My name is Zed."), _model("Hello Zed."), _user("I like tennis.")])
    t2 = rc.interactions.create(model=MODEL, input="Tell me more.", previous_interaction_id=t1.id)
    sandbox.expire()
    t3 = rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t2.id)
    _flush(store)
    sent = sandbox.requests[-1]
    assert "previous_interaction_id" not in sent
    assert _sent_texts(sent)[:3] == ["My name is Zed.", "Hello Zed.", "I like tennis."]
    assert "Your name is Zed" in store.get(t3.id).output_text
    assert [r.id for r in store.chain(t3.id)] == [t1.id, t2.id, t3.id]


def test_stored_tools_are_carried_into_a_rebuilt_call_that_passes_none(rc, store, sandbox):
    t1 = rc.interactions.create(model=MODEL, input="My name is Ada.", tools=WEATHER)
    sandbox.expire()
    t2 = rc.interactions.create(model=MODEL, input="Use get_weather for Paris.", previous_interaction_id=t1.id)
    sent = sandbox.requests[-1]
    assert [t["name"] for t in sent["tools"]] == ["get_weather"]
    assert t2.status == "requires_action"  # the model could call the tool: the tools reached it


def test_what_the_caller_passes_wins_over_what_was_stored(rc, store, sandbox):
    t1 = rc.interactions.create(
        model=MODEL, input="My name is Ada.", tools=WEATHER, system_instruction="Be brief.",
        generation_config={"temperature": 0.1},
    )
    sandbox.expire()
    rc.interactions.create(
        model=MODEL, input="Use get_time for Paris.", previous_interaction_id=t1.id, tools=CLOCK,
        system_instruction="Be verbose.", generation_config={"temperature": 0.9},
    )
    sent = sandbox.requests[-1]
    assert "previous_interaction_id" not in sent
    assert [t["name"] for t in sent["tools"]] == ["get_time"]
    assert sent["system_instruction"] == "Be verbose."
    assert sent["generation_config"]["temperature"] == 0.9


def test_a_bad_argument_400_is_raised_and_leaves_the_chain_live(rc, store, sandbox):
    t1 = rc.interactions.create(model=MODEL, input="My name is Ada.")
    before = len(sandbox.requests)
    sandbox.fail(400)  # invalid_request, not "Invalid turn token"
    with pytest.raises(Exception) as info:
        rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t1.id)
    assert getattr(info.value, "status_code", getattr(info.value, "code", None)) == 400
    _flush(store)
    assert len(sandbox.requests) == before + 1  # nothing re-sent as a rebuild
    assert store.get(t1.id).server_state == "live"
    failed = [r for r in store.list(limit=None) if r.status == "failed"]
    assert len(failed) == 1 and failed[0].error["status"] == 400


@pytest.mark.parametrize("gone", ["deleted", "expired"])
def test_a_parent_known_gone_is_rebuilt_without_a_doomed_request(rc, store, sandbox, gone):
    t1 = rc.interactions.create(model=MODEL, input="My name is Ada.")
    if gone == "deleted":
        rc.interactions.delete(t1.id)
    else:
        sandbox.expire(t1.id)
        with pytest.raises(Exception):
            rc.interactions.get(t1.id)  # the 404 tells the archive
    _flush(store)
    assert store.get(t1.id).server_state == gone
    before = len(sandbox.requests)
    t2 = rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t1.id)
    assert len(sandbox.requests) == before + 1
    assert "previous_interaction_id" not in sandbox.requests[-1]
    _flush(store)
    row = store.get(t2.id)
    assert (row.parent_id, row.link) == (t1.id, "rebuilt") and "Ada" in row.output_text


def test_retention_free_is_honoured(client, store, sandbox):
    rc = convostore.record(client, store=store, retention="free")
    t1 = rc.interactions.create(model=MODEL, input="My name is Ada.")
    _flush(store)
    row = store.get(t1.id)
    assert row.expires_at - row.created == timedelta(days=1)
    paid = convostore.record(client, store=store)
    t2 = paid.interactions.create(model=MODEL, input="Hello.")
    _flush(store)
    assert store.get(t2.id).expires_at - store.get(t2.id).created == timedelta(days=55)


def test_expiry_counts_from_when_the_interaction_was_created_not_recorded(rc, store, sandbox, tmp_path):
    # An interaction made 60 days ago by a client that did not record it: a get files
    # it, already past its paid-tier expiry, so continuing it rebuilds at once.
    bare = make_client(sandbox.base_url)
    old = bare.interactions.create(model=MODEL, input="My name is Ada.")
    bare.close()
    sandbox.state.interactions[old.id].created = "2020-01-01T00:00:00.000000Z"  # the server's clock, 60+ days back
    rc.interactions.get(old.id)
    _flush(store)
    row = store.get(old.id)
    assert row.expires_at.isoformat().startswith("2020-02-25")  # created + 55 days
    before = len(sandbox.requests)
    rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=old.id)
    assert len(sandbox.requests) == before + 1 and "previous_interaction_id" not in sandbox.requests[-1]

    # An imported line: its expiry from its `created`, not from today.
    line = {"convostore": 1, "api_version": "v1",
            "request": {"model": MODEL, "input": "Hi."},
            "response": {"id": "v1_imported", "status": "completed", "created": "2021-03-01T00:00:00Z",
                         "steps": [_model("Hello.")]},
            "meta": {"recorded_at": "2026-01-01T00:00:00Z"}}
    path = tmp_path / "old.jsonl"
    path.write_bytes(orjson.dumps(line) + b"\n")
    import_jsonl(store, path)
    assert store.get("v1_imported").expires_at.isoformat().startswith("2021-04-25")


def test_three_stateless_calls_resending_the_history_form_one_chain(rc, store, sandbox):
    t1 = rc.interactions.create(model=MODEL, input="My name is Ada.")
    said1 = wire.normalize_output({"steps": [s.model_dump(mode="json", exclude_none=True) for s in t1.steps]})
    h2 = [_user("My name is Ada."), *said1, _user("I like tennis.")]
    t2 = rc.interactions.create(model=MODEL, input=h2)
    said2 = wire.normalize_output({"steps": [s.model_dump(mode="json", exclude_none=True) for s in t2.steps]})
    t3 = rc.interactions.create(model=MODEL, input=[*h2, *said2, _user("What is my name?")])
    _flush(store)
    chain = store.chain(t3.id)
    assert [r.id for r in chain] == [t1.id, t2.id, t3.id]
    assert [r.link for r in chain] == ["root", "stateless", "stateless"]
    assert len({r.conversation_id for r in chain}) == 1
    assert [r.input_text for r in chain] == ["My name is Ada.", "I like tennis.", "What is my name?"]


def test_the_decision_is_public_for_any_sender(rc, store, sandbox):
    """A proxy holds wire JSON, not SDK calls: plan, send, and after_error on a lost chain."""
    t1 = rc.interactions.create(model=MODEL, input="My name is Ada.")
    _flush(store)
    body = {"model": MODEL, "input": "What is my name?", "previous_interaction_id": t1.id}
    live = resume.plan(store, body)
    assert live.body is body and not live.rebuilt and live.annotations() == {}

    sandbox.expire()
    url = f"{sandbox.base_url}/v1/interactions"
    status, answer = _post(url, body)
    assert status == 400

    class Lost(Exception):
        status_code = 400

    assert resume.after_error(store, body, Lost("boom: bad argument")) is None
    rebuilt = resume.after_error(store, body, Lost(answer["error"]["message"]))
    assert rebuilt is not None and rebuilt.rebuilt_from == t1.id and rebuilt.turns == 1
    assert rebuilt.annotations() == {"parent_id": t1.id, "link": "rebuilt"}
    assert store.get(t1.id).server_state == "expired"
    assert resume.plan(store, body).rebuilt  # now known gone: no doomed request next time
    status, done = _post(url, rebuilt.body)
    assert status == 200 and "Your name is Ada" in wire.output_text(wire.normalize_output(done))


def test_a_store_failure_marking_a_lost_chain_goes_to_on_store_error_and_the_rebuild_goes_on(
    client, sqlite_store, sandbox, tmp_path, caplog
):
    """A sender's ``on_store_error`` hears of an archive it could not mark (another writer
    holds the lock); without one the failure is logged. Either way the rebuilt plan comes back."""
    rc = convostore.record(client, store=sqlite_store, strict=True)
    t1 = rc.interactions.create(model=MODEL, input="My name is Ada.")
    sandbox.expire()
    body = {"model": MODEL, "input": "What is my name?", "previous_interaction_id": t1.id}
    status, answer = _post(f"{sandbox.base_url}/v1/interactions", body)
    assert status == 400

    class Lost(Exception):
        status_code = 400

    lost = Lost(answer["error"]["message"])
    locked = convostore.Store(tmp_path / "archive.db", busy_timeout=0)
    other_writer = sqlite3.connect(tmp_path / "archive.db")
    other_writer.execute("BEGIN IMMEDIATE")
    try:
        heard: list[BaseException] = []
        told = resume.after_error(locked, body, lost, on_store_error=heard.append)
        assert told is not None and told.rebuilt_from == t1.id and told.turns == 1
        assert len(heard) == 1 and "locked" in str(heard[0])
        with caplog.at_level(logging.WARNING, logger="convostore"):
            logged = resume.after_error(locked, body, lost)
        assert logged is not None and logged.rebuilt_from == t1.id
        assert f"could not mark {t1.id} expired" in caplog.text
    finally:
        other_writer.rollback()
        other_writer.close()
        locked.close()
    assert sqlite_store.get(t1.id).server_state == "live"  # the mark never landed


def test_stored_settings_are_carried_and_the_callers_model_wins(rc, store, sandbox):
    t1 = rc.interactions.create(model=MODEL, input="My name is Ada.", system_instruction="Be brief.",
                                generation_config={"temperature": 0.1})
    sandbox.expire()
    rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t1.id)
    sent = sandbox.requests[-1]
    assert "previous_interaction_id" not in sent and sent["model"] == MODEL
    assert sent["system_instruction"] == "Be brief." and sent["generation_config"]["temperature"] == 0.1
    rc.interactions.create(model=OTHER_MODEL, input="And now?", previous_interaction_id=t1.id)
    assert sandbox.requests[-1]["model"] == OTHER_MODEL  # not the stored turn's model


def test_an_agent_continuing_an_expired_model_chain_gets_the_history_not_the_models_settings(rc, store, sandbox):
    t1 = rc.interactions.create(model=MODEL, input="My name is Ada.", tools=WEATHER, system_instruction="Be brief.",
                                generation_config={"temperature": 0.1})
    sandbox.expire()
    t2 = rc.interactions.create(agent=AGENT, input="What is my name?", previous_interaction_id=t1.id)
    sent = sandbox.requests[-1]
    assert sent["agent"] == AGENT and "model" not in sent  # one of the two, as the API requires
    assert "generation_config" not in sent  # a model's settings (an agent takes agent_config)
    assert sent["system_instruction"] == "Be brief." and [t["name"] for t in sent["tools"]] == ["get_weather"]
    assert "Your name is Ada" in wire.output_text(wire.normalize_output(t2.model_dump(mode="json", exclude_none=True)))


def test_a_404_on_a_continuation_is_a_lost_chain_and_is_rebuilt(rc, store, sandbox):
    t1 = rc.interactions.create(model=MODEL, input="My name is Ada.")
    sandbox.fail(404)  # a server that says "not found" for a forgotten chain
    t2 = rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t1.id)
    assert "previous_interaction_id" not in sandbox.requests[-1]
    _flush(store)
    assert store.get(t1.id).server_state == "expired"
    assert (store.get(t2.id).parent_id, store.get(t2.id).link) == (t1.id, "rebuilt")


def test_a_server_error_on_a_continuation_is_raised_not_rebuilt(rc, store, sandbox):
    t1 = rc.interactions.create(model=MODEL, input="My name is Ada.")
    before = len(sandbox.requests)
    sandbox.fail(500, 4)  # every attempt the SDK makes
    with pytest.raises(Exception) as info:
        rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t1.id)
    assert resume.is_lost_chain_error(info.value) is False
    assert len(sandbox.requests) == before + 4  # the SDK's attempts, and no rebuilt one after them
    assert all("previous_interaction_id" in sent for sent in sandbox.requests[before:])
    _flush(store)
    assert store.get(t1.id).server_state == "live"


def test_a_proxy_using_httpx_gets_the_same_decision(rc, store, sandbox):
    """``httpx``'s ``raise_for_status`` error carries the status on its response only."""
    t1 = rc.interactions.create(model=MODEL, input="My name is Ada.")
    _flush(store)
    body = {"model": MODEL, "input": "What is my name?", "previous_interaction_id": t1.id}
    assert resume.needs_rebuild(store, t1.id) is False and resume.needs_rebuild(store, "v1_unknown") is False
    live = resume.plan(store, body)
    assert (live.rebuilt_from, live.reason, live.turns) == (None, None, 0)
    sandbox.expire()
    with httpx.Client(base_url=sandbox.base_url, headers={"x-goog-api-key": "k"}) as http:
        with pytest.raises(httpx.HTTPStatusError) as info:
            http.post("/v1/interactions", json=body).raise_for_status()
        rebuilt = resume.after_error(store, body, info.value)
        assert rebuilt is not None and rebuilt.rebuilt_from == t1.id and rebuilt.body["model"] == MODEL
        answer = http.post("/v1/interactions", json=rebuilt.body)
    assert answer.status_code == 200 and "Your name is Ada" in wire.output_text(wire.normalize_output(answer.json()))


def test_a_body_that_names_no_model_is_rebuilt_with_the_chains_model(rc, store, sandbox):
    """A sender's body without ``model`` (the SDK always names one; raw wire JSON may not):
    a rebuilt body has no server chain to take the model from, so it names the chain's."""
    t1 = rc.interactions.create(model=MODEL, input="My name is Ada.")
    sandbox.expire(t1.id)
    with pytest.raises(Exception):
        rc.interactions.get(t1.id)  # the 404 tells the archive
    _flush(store)
    rebuilt = resume.plan(store, {"input": "What is my name?", "previous_interaction_id": t1.id})
    assert rebuilt.rebuilt and rebuilt.body["model"] == MODEL
    status, answer = _post(f"{sandbox.base_url}/v1/interactions", rebuilt.body)
    assert status == 200 and "Your name is Ada" in wire.output_text(wire.normalize_output(answer))
