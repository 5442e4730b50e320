"""``get``, ``refresh`` and background polling never rewrite what a turn sent or answered.

A GET returns a turn's input steps ahead of its outputs. A rebuilt or self-managed turn
sent model steps as input (the history it re-sent), so splitting the GET body by step
type writes that history into the turn's outputs. Hypothesis drives random
conversations through the real SDK and the sandbox (chained on the server, rebuilt
after expiry, stateless, self-managed, branched, streamed, in the background, with
continuation hops, on both wire generations' shapes of input) and calls ``get`` and
``refresh`` at random points: every row's input, output and text, and the history of
every turn, must be what they were.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convostore
from convostore import wire
from convostore.rebuild import history
from convostore.resume import refresh
from convostore.sandbox import Sandbox

from .fixtures_sandbox import make_client

MODELS = ("gemini-2.5-flash", "gemini-3-flash-preview")  # the second one thinks (thought steps)
NAMES = ("Ada", "Karthik", "Lin")


def _text(data: st.DataObject, hops: int) -> str:
    words = data.draw(st.sampled_from(["My name is {n}.", "What is my name?", "I like cricket.", "Tell me more."]))
    text = words.format(n=data.draw(st.sampled_from(NAMES)))
    return f"{text} [continue:{hops}]" if hops else text


def _user(text: str) -> dict[str, Any]:
    return {"type": "user_input", "content": [{"type": "text", "text": text}]}


def _settle(store: Any) -> None:
    """Rows saved asynchronously (a background writer) are written before we read."""
    flush = getattr(store, "flush", None)
    if callable(flush):
        flush()


def _snapshot(store: Any) -> dict[str, Any]:
    _settle(store)
    rows = {r.id: r for r in store.list(limit=None)}
    snap: dict[str, Any] = {}
    for iid, r in rows.items():
        snap[iid] = (r.input_steps, r.output_steps, r.input_text, r.output_text, r.parent_id, r.link)
        if r.status != "failed":
            snap["history:" + iid] = history(store, iid).input
    return snap


def _poll(client: Any, iid: str) -> None:
    """Poll a background turn until the sandbox finished it (bounded, as an app would)."""
    deadline = time.monotonic() + 10
    while client.interactions.get(iid).status in ("in_progress", "queued"):
        assert time.monotonic() < deadline, f"background turn {iid} never finished"


def _new_turn(store: Any, before: set[str]) -> str | None:
    """The id that ends the turn just created: its last continuation hop."""
    _settle(store)
    new = [r for r in store.list(limit=None) if r.id not in before and r.status != "failed"]
    return max(new, key=lambda r: r.hop_index).id if new else None


# --- the cases of issue 8, by hand ---------------------------------------------------------

MODEL = MODELS[0]


def _rows(store: Any) -> dict[str, Any]:
    _settle(store)
    return {r.id: (r.input_steps, r.output_steps, r.input_text, r.output_text) for r in store.list(limit=None)}


def test_get_of_a_rebuilt_turn_keeps_its_outputs_and_the_next_rebuild_sends_history_once(client, store, sandbox):
    rc = convostore.record(client, store=store)
    r1 = rc.interactions.create(model=MODEL, input="My name is Ada.")
    r2 = rc.interactions.create(model=MODEL, input="I like cricket.", previous_interaction_id=r1.id)
    sandbox.expire()
    r3 = rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=r2.id)
    assert store.get(r3.id).link == "rebuilt"
    before = _rows(store)
    rc.interactions.get(r3.id)
    assert _rows(store) == before
    assert len(store.get(r3.id).output_steps) == 1

    sandbox.expire()
    rc.interactions.create(model=MODEL, input="And what do I like?", previous_interaction_id=r3.id)
    sent = wire.normalize_input(sandbox.requests[-1]["input"])
    assert [s["type"] for s in sent] == ["user_input", "model_output"] * 3 + ["user_input"]


@pytest.mark.parametrize(
    "shape",
    [
        [_user("My name is Ada."), {"type": "model_output", "content": [{"type": "text", "text": "Hi Ada."}]}, _user("Who am I?")],
        [_user("Finish this:"), {"type": "model_output", "content": [{"type": "text", "text": "Once upon"}]}],
    ],
    ids=["self-managed", "prefilled"],
)
def test_get_refresh_and_reimport_of_a_turn_that_sent_model_steps(client, store, sandbox, tmp_path, shape):
    from click.testing import CliRunner

    from convostore.archive import export_jsonl, import_jsonl
    from convostore.cli import cli

    rc = convostore.record(client, store=store)
    turn = rc.interactions.create(model=MODEL, input=shape)
    before = _rows(store)
    rc.interactions.get(turn.id)
    assert _rows(store) == before
    assert refresh(store, rc).live == 1
    assert _rows(store) == before
    if store.dialect == "sqlite":  # the CLI's refresh, on the archive file
        env = {"GEMINI_API_KEY": "test-key", "GOOGLE_GEMINI_BASE_URL": sandbox.base_url}
        out = CliRunner().invoke(cli, ["--db", str(store.path), "refresh"], env=env)
        assert out.exit_code == 0, out.output
        assert _rows(store) == before
    # The stored response is now the GET body (input ahead of outputs): an export read
    # back splits it by the request's input too.
    dump = tmp_path / "dump.jsonl"
    with dump.open("wb") as f:
        export_jsonl(store, f)
    copy = convostore.Store(tmp_path / "copy.db")
    import_jsonl(copy, dump)
    assert _rows(copy) == before
    copy.close()


def test_polling_a_background_turn_only_gains_its_outputs(client, store, sandbox):
    rc = convostore.record(client, store=store)
    first = rc.interactions.create(model=MODEL, input="My name is Ada.")
    sandbox.expire()
    bg = rc.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=first.id, background=True)
    created = store.get(bg.id)
    assert created.link == "rebuilt" and created.output_steps == []
    _poll(rc, bg.id)
    done = store.get(bg.id)
    assert done.status == "completed"
    assert done.input_steps == created.input_steps and done.input_text == created.input_text
    assert [s["type"] for s in done.output_steps] == ["model_output"]
    assert "Ada" in done.output_text and done.output_text.count("Ada") == 1


@pytest.mark.parametrize("how", ["background", "abandoned-stream"])
def test_a_turn_completed_by_a_later_get_is_found_by_a_stateless_call(client, store, sandbox, how):
    """Its outputs arrived after it was saved: the context hash that links a stateless
    call re-sending them must include them."""
    rc = convostore.record(client, store=store)
    first = rc.interactions.create(model=MODEL, input="My name is Ada.")
    if how == "background":
        turn = rc.interactions.create(model=MODEL, input="I like tennis.", previous_interaction_id=first.id, background=True)
        sandbox.settle()
        iid = turn.id
    else:
        stream = rc.interactions.create(model=MODEL, input="I like tennis.", previous_interaction_id=first.id, stream=True)
        next(iter(stream))
        stream.close()
        _settle(store)
        (iid,) = [r.id for r in store.list(limit=None) if r.id != first.id]
    rc.interactions.get(iid)
    _settle(store)
    row = store.get(iid)
    assert row.status == "completed" and not row.partial and row.output_text
    history_ = [*store.get(first.id).input_steps, *store.get(first.id).output_steps, *row.input_steps, *row.output_steps]
    nxt = rc.interactions.create(model=MODEL, input=[*history_, _user("What is my name?")])
    _settle(store)
    linked = store.get(nxt.id)
    assert (linked.parent_id, linked.link) == (iid, "stateless")
    assert [r.id for r in store.chain(nxt.id)] == [first.id, iid, nxt.id]


# --- random conversations --------------------------------------------------------------------


@pytest.fixture(scope="module")
def world() -> Any:
    """One sandbox and one SDK client for all examples (a sandbox takes 0.5 s to stop, a
    client 0.2 s to build); each example records into its own archive.
    ``background_delay=0``: background turns finish at once."""
    with Sandbox(background_delay=0) as sandbox:
        client = make_client(sandbox.base_url)
        yield sandbox, client
        client.close()


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_get_and_refresh_never_rewrite_a_turn(world: Any, data: st.DataObject) -> None:
    sb, client = world
    with tempfile.TemporaryDirectory() as tmp:
        store = convostore.Store(Path(tmp) / "archive.db")
        convostore.record(client, store=store)
        heads: list[str] = []  # ids a later turn may continue from (any of them: branches)
        background: list[str] = []
        try:
            for _ in range(data.draw(st.integers(4, 10), label="ops")):
                op = data.draw(st.sampled_from(["start", "server", "stateless", "expire", "get", "refresh"]))
                if op != "expire" and not heads:
                    op = "start"
                if op in ("get", "refresh"):
                    before = _snapshot(store)
                    if op == "get":
                        target = data.draw(st.sampled_from(sorted(k for k in before if ":" not in k)))
                        try:
                            client.interactions.get(target)
                        except Exception:  # noqa: BLE001 - expired/not stored: the server's 404
                            pass
                    else:
                        refresh(store, client)
                    assert _snapshot(store) == before
                    continue
                if op == "expire":
                    sb.expire(data.draw(st.sampled_from([None, *heads])))
                    continue

                model = data.draw(st.sampled_from(MODELS))
                stream = data.draw(st.booleans(), label="stream")
                hops = data.draw(st.sampled_from([0, 0, 1, 2]), label="hops")
                bg = not stream and not hops and data.draw(st.booleans(), label="background")
                stored = bg or data.draw(st.sampled_from([True, True, False]), label="store")
                kwargs: dict[str, Any] = {"model": model, "store": stored}
                if bg:
                    kwargs["background"] = True
                text = _text(data, hops)
                if op == "start":
                    shape = data.draw(st.sampled_from(["text", "self-managed", "prefilled"]))
                    # A conversation the application keeps itself: history as input; or
                    # one whose input ends with the model's words (the turn's own model
                    # steps come before its outputs: the step types cannot tell where).
                    said = {"type": "model_output", "content": [{"type": "text", "text": "Hello Ada."}]}
                    kwargs["input"] = {
                        "text": text,
                        "self-managed": [_user("My name is Ada."), said, _user(text)],
                        "prefilled": [_user(text), said],
                    }[shape]
                else:
                    parent = data.draw(st.sampled_from(heads), label="parent")
                    if op == "server":
                        kwargs.update(input=text, previous_interaction_id=parent)
                    else:
                        kwargs["input"] = history(store, parent, model=model).input + [_user(text)]
                ids = {r.id for r in store.list(limit=None)}
                if stream:
                    list(client.interactions.create(stream=True, **kwargs))
                else:
                    client.interactions.create(**kwargs)
                head = _new_turn(store, ids)
                assert head is not None
                heads.append(head)
                if bg:
                    _poll(client, head)
                    background.append(head)
            # Every turn holds what the server answered it (background: its final outputs).
            _settle(store)
            for row in store.list(limit=None):
                served = sb.state.interactions[row.id]
                if not row.partial:
                    assert row.output_steps == wire.normalize_output({"steps": served.output_steps}), row.id
            for iid in background:
                assert store.get(iid).status == "completed" and store.get(iid).output_text
        finally:
            store.close()
