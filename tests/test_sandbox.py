"""The sandbox speaks the Interactions API well enough that the real SDK runs unchanged."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest

from convostore.sandbox import Sandbox
from tests.fixtures_sandbox import make_client

MODEL = "gemini-2.5-flash"


def http(sb, method, path, body=None, key=True):
    req = urllib.request.Request(sb.base_url + path, method=method, data=orjson.dumps(body) if body is not None else None)
    if key:
        req.add_header("x-goog-api-key", "k")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_a_name_told_in_turn_one_is_known_only_with_the_history(client):
    t1 = client.interactions.create(model=MODEL, input="Hi, my name is Karthik.")
    t2 = client.interactions.create(model=MODEL, input="I like cricket.", previous_interaction_id=t1.id)
    t3 = client.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t2.id)
    assert "Karthik" in t3.output_text and "3 user turns" in t3.output_text
    alone = client.interactions.create(model=MODEL, input="What is my name?")
    assert "Karthik" not in alone.output_text
    assert t3.usage.total_tokens > t1.usage.total_tokens
    assert t3.created and t3.updated


def test_answers_depend_only_on_model_and_context(client):
    a = client.interactions.create(model=MODEL, input="Hello there").output_text
    b = client.interactions.create(model=MODEL, input="Hello there").output_text
    c = client.interactions.create(model="gemini-2.5-pro", input="Hello there").output_text
    assert a == b and a != c


def test_every_input_form_is_accepted(client):
    forms = [
        "my name is Ada",
        {"type": "text", "text": "my name is Ada"},
        [{"type": "text", "text": "my name is Ada"}],
        [{"type": "user_input", "content": [{"type": "text", "text": "my name is Ada"}]}],
    ]
    answers = {client.interactions.create(model=MODEL, input=f).output_text for f in forms}
    assert len(answers) == 1


def test_create_returns_outputs_and_get_adds_the_user_input(client):
    t = client.interactions.create(model="gemini-3-flash-preview", input="Hi")
    assert [s.type for s in t.steps] == ["thought", "model_output"]
    assert t.steps[0].signature
    g = client.interactions.get(t.id)
    assert [s.type for s in g.steps] == ["user_input", "thought", "model_output"]


def test_errors_are_worded_as_the_real_service(client, sandbox):
    with pytest.raises(Exception) as err:
        client.interactions.get("v1_missing")
    assert err.value.status_code == 404
    with pytest.raises(Exception) as err:
        client.interactions.create(model=MODEL, input="x", previous_interaction_id="v1_missing")
    assert err.value.status_code == 400 and "Invalid turn token: v1_missing" in str(err.value)
    status, body = http(sandbox, "POST", "/v1/interactions", {"model": MODEL, "input": 42})
    assert status == 400 and orjson.loads(body)["error"]["code"] == "invalid_request"
    status, body = http(sandbox, "POST", "/v1/interactions", {"model": MODEL, "input": "x"}, key=False)
    assert status == 401
    for method, path in (("DELETE", "/v1/interactions/nope"), ("POST", "/v1/interactions/nope/cancel")):
        status, body = http(sandbox, method, path)
        assert status == 404 and orjson.loads(body) == {"error": {"message": "Interaction nope not found.", "code": "not_found"}}


def test_store_false_returns_an_id_and_keeps_nothing(client):
    t = client.interactions.create(model=MODEL, input="my name is Ada", store=False)
    assert t.id
    with pytest.raises(Exception) as err:
        client.interactions.get(t.id)
    assert err.value.status_code == 404


def test_expiry_on_demand_and_by_retention(client, sandbox):
    t = client.interactions.create(model=MODEL, input="Hi")
    sandbox.expire(t.id)
    with pytest.raises(Exception):
        client.interactions.get(t.id)
    with Sandbox(retention=3600) as short:  # aged on the sandbox's own clock: no sleeping
        c = make_client(short.base_url)
        t = c.interactions.create(model=MODEL, input="Hi")
        short.advance(3599)
        c.interactions.get(t.id)  # still within retention
        t2 = c.interactions.create(model=MODEL, input="and again", previous_interaction_id=t.id)
        short.advance(2)
        with pytest.raises(Exception) as err:
            c.interactions.create(model=MODEL, input="again", previous_interaction_id=t.id)
        assert "Invalid turn token" in str(err.value)
        c.interactions.get(t2.id)  # counted from its own creation: 2 s old
        c.close()


def test_background_is_polled_to_completion_or_cancelled():
    with Sandbox(background_delay=3600) as sandbox:  # background jobs run when settle() says
        client = make_client(sandbox.base_url)
        _background_completes_or_stays_cancelled(client, sandbox)
        client.close()


def _background_completes_or_stays_cancelled(client, sandbox):
    b = client.interactions.create(model=MODEL, input="my name is Ada", background=True)
    assert b.status == "in_progress"
    assert client.interactions.get(b.id).status == "in_progress"
    sandbox.settle()  # the background job has run
    got = client.interactions.get(b.id)
    assert got.status == "completed" and "Ada" in got.output_text
    b2 = client.interactions.create(model=MODEL, input="long task", background=True)
    assert client.interactions.cancel(b2.id).status == "cancelled"
    sandbox.settle()  # its job runs now, and must not complete a cancelled interaction
    assert client.interactions.get(b2.id).status == "cancelled"


def test_stream_read_to_the_end_and_abandoned(client):
    events = list(client.interactions.create(model=MODEL, input="Hi, my name is Ada.", stream=True))
    kinds = [e.event_type for e in events]
    assert kinds[0] == "interaction.created" and kinds[-1] == "interaction.completed"
    assert {"step.start", "step.delta", "step.stop"} <= set(kinds)
    text = "".join(e.delta.text for e in events if e.event_type == "step.delta" and e.delta.type == "text")
    assert "Ada" in text
    stream = client.interactions.create(model=MODEL, input="Tell me a story", stream=True)
    next(iter(stream))
    stream.close()  # the server copes with a client that stops reading
    assert client.interactions.create(model=MODEL, input="still fine?").status == "completed"


def test_stream_resumes_after_an_event_id(client, sandbox):
    events = list(client.interactions.create(model=MODEL, input="Hi, my name is Ada.", stream=True))
    iid = events[0].interaction.id
    third = events[2].event_id
    req = urllib.request.Request(f"{sandbox.base_url}/v1/interactions/{iid}?stream=true&last_event_id={third}", headers={"x-goog-api-key": "k"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        lines = [l for l in resp.read().decode().splitlines() if l.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    resumed = [orjson.loads(l[6:]) for l in lines[:-1]]
    assert [e["event_id"] for e in resumed] == [e.event_id for e in events[3:]]


def test_continuation_hops_are_followed_by_the_sdk(client, sandbox):
    out = client.interactions.create(model=MODEL, input="Write an essay [continue:2]")
    assert out.status == "completed"
    assert len(out.continuation_ids) == 3
    hops = sandbox.requests[-2:]
    assert all(h.get("continuation_token") for h in hops)


def test_faults_are_absorbed_by_the_sdks_retry(client, sandbox):
    sandbox.fail(503, 2)
    assert client.interactions.create(model=MODEL, input="x").status == "completed"
    sandbox.fail(429, 1)
    assert client.interactions.create(model=MODEL, input="x").status == "completed"
    status, _ = http(sandbox, "POST", "/_sandbox/fail?status=429&count=1")
    status, body = http(sandbox, "POST", "/v1/interactions", {"model": MODEL, "input": "x"})
    assert status == 429


def test_http_controls(client, sandbox):
    t = client.interactions.create(model=MODEL, input="Hi")
    status, body = http(sandbox, "GET", "/_sandbox/requests")
    assert orjson.loads(body)["requests"][-1]["input"] == "Hi"
    status, body = http(sandbox, "POST", f"/_sandbox/expire?id={t.id}")
    assert orjson.loads(body) == {"expired": 1}
    with pytest.raises(Exception):
        client.interactions.get(t.id)


def test_async_client(aclient):
    async def go():
        t1 = await aclient.interactions.create(model=MODEL, input="my name is Ada")
        t2 = await aclient.interactions.create(model=MODEL, input="what is my name?", previous_interaction_id=t1.id)
        events = [e async for e in await aclient.interactions.create(model=MODEL, input="hi", stream=True)]
        return t2, events

    t2, events = asyncio.run(go())
    assert "Ada" in t2.output_text and events[-1].event_type == "interaction.completed"


def test_32_concurrent_clients_get_separate_conversations(client):
    def conversation(i):
        t1 = client.interactions.create(model=MODEL, input=f"my name is Person{i}")
        t2 = client.interactions.create(model=MODEL, input="what is my name?", previous_interaction_id=t1.id)
        return t2.output_text

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(conversation, range(32)))
    for i, text in enumerate(answers):
        assert f"Person{i}." in text


def test_the_cli_serves_and_prints_its_url():
    proc = subprocess.Popen([sys.executable, "-m", "convostore", "sandbox", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        c = make_client(url)
        assert c.interactions.create(model=MODEL, input="Hi").status == "completed"
    finally:
        proc.terminate()
        proc.wait(10)
