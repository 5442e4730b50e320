"""Apps in other languages: the real JavaScript SDK (``@google/genai`` from npm, run with
node) and curl, each pointed at the sandbox directly, and at ``convostore proxy`` in front
of it.

Straight at the sandbox, the JS SDK shows the sandbox speaks what that SDK sends (its
paths, headers, streaming). One sandbox and one node process per module; waits are on
events (the sandbox's ``hold``/``hold_streams``/``release``/``settle``), never sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from convostore.sandbox import Sandbox
from tests.js_client import JsClient, ensure_node

MODEL = "gemini-2.5-flash"
KEY = "js-key-4d1c8e2b"


@pytest.fixture(scope="module")
def node() -> str:
    return ensure_node()


@pytest.fixture(scope="module")
def direct_sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="module")
def js_direct(node: str, direct_sandbox: Sandbox) -> Iterator[JsClient]:
    client = JsClient(node, direct_sandbox.base_url, KEY)
    yield client
    client.close()


def test_the_js_sdk_holds_a_conversation_with_the_sandbox(js_direct, direct_sandbox):
    first = js_direct.call("create", params={"model": MODEL, "input": "Hi, my name is Ada. I like chess."})
    second = js_direct.call("create", params={"model": MODEL, "input": "What is my name?",
                                              "previous_interaction_id": first["id"]})
    assert first["status"] == second["status"] == "completed"
    assert "Your name is Ada" in second["text"]
    assert direct_sandbox.requests[-1]["previous_interaction_id"] == first["id"]
    assert direct_sandbox.calls[-1] == ("POST", "/v1/interactions")  # the current API, steps


def test_the_js_sdk_yields_sandbox_events_one_by_one(js_direct, direct_sandbox):
    direct_sandbox.hold_streams(3)
    try:
        js_direct.send("stream", params={"model": MODEL, "input": "Tell me a story."})
        early = [js_direct.line()["event"]["event_type"] for _ in range(3)]
        assert early == ["interaction.created", "interaction.status_update", "step.start"]
    finally:
        direct_sandbox.release()
    events, answer = js_direct.answer()
    assert events[-1]["event_type"] == "interaction.completed"
    assert "Tell me a story" in answer["ok"]["text"]


def test_the_js_sdk_polls_a_background_interaction_on_the_sandbox(js_direct, direct_sandbox):
    started = js_direct.call("create", params={"model": MODEL, "input": "Think in the background.", "background": True})
    assert started["status"] == "in_progress"
    assert js_direct.call("get", id=started["id"])["status"] == "in_progress"
    direct_sandbox.settle()
    done = js_direct.call("get", id=started["id"])
    assert done["status"] == "completed" and "Think in the background" in done["text"]


def test_the_js_sdk_sees_the_sandbox_429_and_its_retry_after(js_direct, direct_sandbox):
    direct_sandbox.fail(429, retry_after=7)
    error = js_direct.fails("create", params={"model": MODEL, "input": "Hello?"})
    assert error["status"] == 429 and error["headers"]["retry-after"] == "7"
