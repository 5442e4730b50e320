"""The canonical form: both API generations' payloads become the same steps, losslessly."""

from __future__ import annotations

import base64

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convostore import wire
from convostore.errors import WireFormatError

text = st.text(min_size=0, max_size=40)
text_block = st.builds(lambda t: {"type": "text", "text": t}, text)
user_step = st.builds(lambda bs: {"type": "user_input", "content": bs}, st.lists(text_block, min_size=1, max_size=3))
model_step = st.builds(lambda bs: {"type": "model_output", "content": bs}, st.lists(text_block, min_size=1, max_size=3))
thought_step = st.builds(
    lambda sig: {"type": "thought", "signature": base64.b64encode(sig).decode(), "summary": []},
    st.binary(min_size=1, max_size=16),
)
call_step = st.builds(
    lambda n, a: {"type": "function_call", "id": "call-" + n, "name": n, "arguments": {"x": a}},
    st.from_regex(r"[a-z_]{1,8}", fullmatch=True),
    st.integers(min_value=-(2**53), max_value=2**53),
)
turn_steps = st.tuples(
    st.lists(user_step, min_size=1, max_size=2),
    st.lists(st.one_of(model_step, thought_step, call_step), min_size=1, max_size=3),
)


def test_string_input_is_one_user_step():
    assert wire.normalize_input("Capital of India.") == [
        {"type": "user_input", "content": [{"type": "text", "text": "Capital of India."}]}
    ]


def test_content_blocks_share_one_user_step():
    blocks = [{"type": "text", "text": "what is this?"}, {"type": "image", "uri": "gs://b/cat.png", "mime_type": "image/png"}]
    assert wire.normalize_input(blocks) == [{"type": "user_input", "content": blocks}]
    assert wire.normalize_input(blocks[1]) == [{"type": "user_input", "content": [blocks[1]]}]


def test_retired_turns_become_the_same_steps_as_current_steps():
    """The seed notebook's section 6 (stateless history as {role, content} turns)."""
    outputs = [{"type": "thought", "signature": "c2ln"}, {"type": "text", "text": "Madrid, Barcelona, Valencia"}]
    turns = [
        {"role": "user", "content": "What are the three largest cities in Spain?"},
        {"role": "model", "content": outputs},
        {"role": "user", "content": "What is the most famous landmark in the second one?"},
    ]
    steps = wire.normalize_input(turns)
    assert [s["type"] for s in steps] == ["user_input", "thought", "model_output", "user_input"]
    assert wire.normalize_output({"outputs": outputs}) == steps[1:3]
    assert wire.steps_to_turns(steps) == [
        {"role": "user", "content": [{"type": "text", "text": turns[0]["content"]}]},
        {"role": "model", "content": outputs},
        {"role": "user", "content": [{"type": "text", "text": turns[2]["content"]}]},
    ]


def test_unknown_step_and_content_types_survive():
    future = [
        {"type": "hologram_call", "id": "h1", "arguments": {"z": 1}},
        {"type": "model_output", "content": [{"type": "smell", "note": "rose"}]},
    ]
    assert wire.normalize_output({"steps": future}) == future
    history, new = wire.split_history(wire.normalize_input(future + [{"type": "user_input", "content": "ok"}]))
    assert history == future


def test_get_body_splits_into_input_and_output():
    body = {
        "steps": [
            {"type": "user_input", "content": [{"type": "text", "text": "hi"}]},
            {"type": "thought", "signature": "abc"},
            {"type": "model_output", "content": [{"type": "text", "text": "hello"}]},
        ]
    }
    inp, out = wire.split_get_steps(body)
    assert wire.input_text(inp) == "hi"
    assert wire.output_text(out) == "hello"
    assert wire.normalize_output(body) == out


@pytest.mark.parametrize("bad", [42, [42], [{"no": "type"}], {"role": "system", "content": "x"}])
def test_malformed_input_is_a_clear_error(bad):
    with pytest.raises(WireFormatError):
        wire.normalize_input(bad)


@given(st.lists(turn_steps, min_size=1, max_size=6))
@settings(max_examples=150, deadline=None)
def test_context_hash_folds_turn_by_turn(turns):
    """A chain's rolling hash equals the hash of the same history sent statelessly."""
    h = None
    flat = []
    for inputs, outputs in turns:
        h = wire.context_hash(h, inputs + outputs)
        flat += inputs + outputs
    assert h == wire.context_hash(None, flat)
    # Dropping thoughts (as people re-sending history do) does not change the match.
    assert h == wire.context_hash(None, [s for s in flat if s["type"] != "thought"])
    # Round trip through the retired turns form keeps the meaning.
    assert wire.context_hash(None, wire.normalize_input(wire.steps_to_turns(flat))) == h


@given(st.lists(turn_steps, min_size=2, max_size=5))
@settings(max_examples=100, deadline=None)
def test_different_histories_hash_differently(turns):
    flat = [s for i, o in turns for s in i + o]
    shorter = [s for i, o in turns[:-1] for s in i + o]
    assert wire.context_hash(None, flat) != wire.context_hash(None, shorter)


def test_split_history_keeps_the_trailing_user_turn():
    steps = wire.normalize_input(
        [
            {"role": "user", "content": "my name is Ada"},
            {"role": "model", "content": "Hi Ada"},
            {"role": "user", "content": "what is my name?"},
        ]
    )
    history, new = wire.split_history(steps)
    assert wire.input_text(new) == "what is my name?"
    assert wire.output_text(history) == "Hi Ada"
    assert wire.split_history(wire.normalize_input("first"))[0] == []


def test_media_is_split_by_hash_and_joined_back():
    data = base64.b64encode(bytes(range(256)) * 8).decode()
    req = {"input": [{"type": "image", "data": data, "mime_type": "image/png"}, {"type": "text", "text": "what?"}]}
    split, found = wire.split_media(req)
    assert len(found) == 1 and data not in orjson.dumps(split).decode()
    digest = next(iter(found))
    assert wire.media_refs(split) == {digest}
    assert wire.join_media(split, lambda h: found[h][1]) == req
    # The hash of a turn is the same with the media inline or split out.
    assert wire.context_hash(None, wire.normalize_input(req["input"])) == wire.context_hash(
        None, wire.normalize_input(split["input"])
    )


def test_a_get_body_is_split_by_what_the_turn_sent_even_when_the_server_regrouped_it():
    sent = wire.normalize_input([{"type": "user_input", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                                 {"type": "model_output", "content": "said"}])
    answer = [{"type": "thought", "signature": "s"}, {"type": "model_output", "content": [{"type": "text", "text": "x"}]}]
    regrouped = [{"type": "user_input", "content": "a"}, {"type": "user_input", "content": "b"},
                 {"type": "model_output", "content": "said"}, *answer]
    inputs, outputs = wire.split_get_steps({"steps": regrouped}, sent)
    assert outputs == answer and len(inputs) == 3
    # Exactly as sent, and a create body (outputs only) with the turn's input known.
    assert wire.split_get_steps({"steps": sent + answer}, sent) == (sent, answer)
    assert wire.split_get_steps({"steps": answer}, sent) == ([], answer)
