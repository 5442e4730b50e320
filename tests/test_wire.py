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


# --- every accepted form, every step kind (each property was watched failing on a mutant) ---

from itertools import groupby  # noqa: E402
from types import MappingProxyType  # noqa: E402

from hypothesis import example  # noqa: E402

media_block = st.builds(lambda t, u: {"type": t, "uri": "gs://b/" + u, "mime_type": "x/y"},
                        st.sampled_from(["image", "audio", "document", "video"]), st.from_regex(r"[a-z]{1,6}", fullmatch=True))
future_block = st.builds(lambda n: {"type": "smell", "note": n}, text)
any_block = st.one_of(text_block, media_block, future_block)
result_step = st.builds(lambda c, r: {"type": "function_result", "call_id": "call-" + c, "name": "f", "result": r},
                        st.from_regex(r"[a-z]{1,6}", fullmatch=True), text)
action_step = st.builds(lambda a: {"type": "user_action", "action": a}, text)
future_steps = st.builds(lambda t, a: {"type": t, "id": "x1", "arguments": {"a": a}},
                         st.sampled_from(["hologram_call", "google_search_call", "code_execution_result"]), text)
message_step = st.builds(lambda t, bs: {"type": t, "content": bs},
                         st.sampled_from(["user_input", "model_output"]), st.lists(any_block, min_size=1, max_size=3))
any_step = st.one_of(message_step, thought_step, call_step, result_step, action_step, future_steps)
#: Steps as the archive stores them, with no two message steps of one type side by side
#: (the retired turns form cannot tell those apart from one step).
canonical = st.lists(any_step, max_size=8).filter(
    lambda ss: all(not (a["type"] == b["type"] and "content" in a) for a, b in zip(ss, ss[1:])))
USER_SIDE = {"user_input", "function_result", "user_action"}

RICH = [  # one of each kind, in an order no turn boundary hides
    {"type": "user_input", "content": [{"type": "text", "text": "hi"}, {"type": "image", "uri": "gs://b/c", "mime_type": "x/y"}]},
    {"type": "user_action", "action": "clicked"},
    {"type": "thought", "signature": "c2ln", "summary": []},
    {"type": "model_output", "content": [{"type": "text", "text": "calling"}]},
    {"type": "google_search_call", "id": "x1", "arguments": {"a": "q"}},
    {"type": "function_call", "id": "call-a", "name": "f", "arguments": {"x": 1}},
    {"type": "function_result", "call_id": "call-a", "name": "f", "result": "r"},
    {"type": "code_execution_result", "id": "x1", "arguments": {"a": ""}},
    {"type": "model_output", "content": [{"type": "text", "text": "done"}]},
]


@given(canonical)
@example(RICH)
@settings(max_examples=150, deadline=None)
def test_stored_steps_are_already_canonical_and_round_trip_through_1x_turns(steps):
    """What ``history`` re-sends (steps, thoughts and actions included) is taken as it is, and
    the 1.x ``{role, content}`` form of it reads back to the same steps: the user's side
    (typed text, function results, actions) as ``user`` turns, every model step as ``model``."""
    assert wire.normalize_input(steps) == steps
    assert wire.normalize_input([MappingProxyType(s) for s in steps]) == steps  # any mapping, not only dicts
    turns = wire.steps_to_turns(steps)
    roles = ["user" if s["type"] in USER_SIDE else "model" for s in steps]
    assert [t["role"] for t in turns] == [r for r, _ in groupby(roles)]
    assert wire.normalize_input(turns) == steps
    assert sum(len(t["content"]) for t in turns) == sum(len(s.get("content", [0])) for s in steps)


@given(canonical)
@example(RICH)
@settings(max_examples=100, deadline=None)
def test_a_create_body_and_a_1x_outputs_body_give_the_same_output_steps(steps):
    outputs_only = [s for s in steps if s["type"] not in USER_SIDE]
    assert wire.normalize_output({"steps": steps}) == outputs_only
    merged = [s for s, _ in groupby(outputs_only, key=lambda s: s if s["type"] != "model_output" else "m")]
    retired = wire.steps_to_outputs(outputs_only)
    assert len(retired) == sum(len(s.get("content", [0])) for s in outputs_only)
    if len(merged) == len(outputs_only):  # no two answers side by side
        assert wire.normalize_output({"outputs": retired}) == outputs_only
    assert wire.output_text(wire.normalize_output({"outputs": retired})) == wire.output_text(outputs_only)


@given(canonical)
@example(RICH)
@example([{"type": "user_input", "content": [{"type": "text", "text": "a"}]}, {"type": "function_result", "call_id": "c", "result": 1}])
@settings(max_examples=100, deadline=None)
def test_split_history_is_everything_up_to_the_last_model_step(steps):
    history, new = wire.split_history(steps)
    assert history + new == steps
    assert all(s["type"] in USER_SIDE for s in new)
    assert not history or history[-1]["type"] not in USER_SIDE


@given(canonical, st.lists(st.one_of(thought_step, call_step, future_steps, message_step.filter(
    lambda s: s["type"] == "model_output")), min_size=1, max_size=3))
@example(RICH[:2], RICH[2:6])
@settings(max_examples=100, deadline=None)
def test_a_get_body_splits_where_the_sent_input_ends(sent, answer):
    body = {"steps": sent + answer}
    assert wire.split_get_steps(body, sent) == (sent, answer)
    # Without the sent input: the outputs are what follows the last input-kind step.
    inputs, outputs = wire.split_get_steps(body)
    assert inputs + outputs == sent + answer
    assert all(s["type"] not in USER_SIDE for s in outputs)
    assert not inputs or inputs[-1]["type"] in USER_SIDE


def test_every_input_form_in_one_list():
    """Strings and content blocks side by side form one user step; steps and turns stay their own."""
    img = {"type": "image", "uri": "gs://b/c", "mime_type": "image/png"}
    call = {"type": "function_call", "id": "c1", "name": "f", "arguments": {}}
    got = wire.normalize_input(["look", img, {"type": "thought", "signature": "s"}, "and", "this",
                                {"role": "model", "content": [call]}, "then",
                                {"type": "function_result", "call_id": "c1", "result": 2},
                                {"type": "model_output", "content": "typed as text"},
                                {"type": "user_action", "action": "tap"}, img])
    assert got == [
        {"type": "user_input", "content": [{"type": "text", "text": "look"}, img]},
        {"type": "thought", "signature": "s"},
        {"type": "user_input", "content": [{"type": "text", "text": "and"}, {"type": "text", "text": "this"}]},
        call,
        {"type": "user_input", "content": [{"type": "text", "text": "then"}]},
        {"type": "function_result", "call_id": "c1", "result": 2},
        {"type": "model_output", "content": [{"type": "text", "text": "typed as text"}]},
        {"type": "user_action", "action": "tap"},
        {"type": "user_input", "content": [img]},
    ]
    # One object: a step, a turn, a content block; nothing.
    assert wire.normalize_input({"type": "user_input", "content": "x"}) == [
        {"type": "user_input", "content": [{"type": "text", "text": "x"}]}]
    assert wire.normalize_input({"type": "user_input"}) == [{"type": "user_input"}]
    assert wire.normalize_input({"type": "thought", "signature": "s", "content": "kept"}) == [
        {"type": "thought", "signature": "s", "content": "kept"}]
    assert wire.normalize_input(MappingProxyType({"role": "user", "content": {"type": "text", "text": "y"}})) == [
        {"type": "user_input", "content": [{"type": "text", "text": "y"}]}]
    assert wire.normalize_input({"role": "user", "content": ["a", img]}) == [
        {"type": "user_input", "content": [{"type": "text", "text": "a"}, img]}]
    assert wire.normalize_input({"role": "model", "content": None}) == []
    # A typed object is what its type says, even when it also carries a role (as some dumps do).
    tagged = {"type": "text", "text": "typed", "role": "user"}
    assert wire.normalize_input(tagged) == wire.normalize_input([tagged]) == [{"type": "user_input", "content": [tagged]}]
    assert wire.normalize_input(None) == [] and wire.normalize_input([]) == []
    assert wire.normalize_output(None) == [] and wire.normalize_output({}) == []
    assert wire.normalize_output({"id": "x", "status": "in_progress"}) == []
    assert wire.normalize_output({"steps": ["junk", {"type": "model_output", "content": "ok"}]}) == [
        {"type": "model_output", "content": [{"type": "text", "text": "ok"}]}]


@pytest.mark.parametrize("bad", [{"role": "user", "content": 5}, {"role": "user", "content": [5]}, ["ok", 3.5],
                                 [{"role": "tool", "content": "x"}], ("a",)])
def test_malformed_turns_and_items_are_a_clear_error(bad):
    with pytest.raises(WireFormatError):
        wire.normalize_input(bad)


def test_a_1x_get_body_splits_its_input_from_its_outputs():
    body = {"input": [{"role": "user", "content": "hi"}], "outputs": [{"type": "text", "text": "hello"}]}
    assert wire.split_get_steps(body) == (
        [{"type": "user_input", "content": [{"type": "text", "text": "hi"}]}],
        [{"type": "model_output", "content": [{"type": "text", "text": "hello"}]}],
    )
    assert wire.split_get_steps({"steps": []}, []) == ([], [])
    assert wire.split_get_steps({"steps": []}) == ([], [])


def test_text_is_read_from_text_blocks_and_plain_string_content_only():
    steps = [
        {"type": "user_input", "content": "typed"},
        {"type": "user_input", "content": [{"type": "image", "text": "not a caption"}, {"type": "text", "text": 5},
                                           "bare", {"type": "text", "text": "second"}]},
        {"type": "model_output", "content": "said"},
        {"type": "model_output"},
        {"type": "model_output", "content": [{"type": "text", "text": "more"}]},
        {"type": "function_result", "call_id": "c", "content": "not typed"},
    ]
    assert wire.input_text(steps) == "typed\nsecond"
    assert wire.output_text(steps) == "said\nmore"


def test_the_context_hash_tells_apart_what_the_model_would_see_differently():
    def h(*steps):
        return wire.context_hash(None, list(steps))

    u = {"type": "user_input", "content": [{"type": "text", "text": "hi"}]}
    m = {"type": "model_output", "content": [{"type": "text", "text": "hi"}]}
    fr = {"type": "function_result", "call_id": "a", "name": "f", "result": "r"}
    fc = {"type": "function_call", "id": "a", "name": "f", "arguments": {"x": 1}}
    fut = {"type": "hologram_call", "id": "h", "arguments": {"z": 1}, "signature": "s1"}
    assert h(u) != h(m) != h() and h(u, m) != h(m, u)
    assert h(u, fr) != h(u, {**fr, "call_id": "b"}) and h(u, fr) != h(u, {**fr, "result": "other"})
    assert h(u, fc) != h(u, {**fc, "arguments": {"x": 2}}) and h(u, fc) != h(u, {**fc, "name": "g"})
    assert h(u, fc) == h(u, {**fc, "id": "other"})  # a call's id is the server's, not the meaning
    assert h(fut) != h({**fut, "arguments": {"z": 2}}) and h(fut) == h({**fut, "signature": "s2"})
    assert h(u, {"type": "thought", "signature": "x"}, m) == h(u, m) == h({"type": "user_input", "content": "hi"}, m)
    img = {"type": "image", "data": "QUJD", "mime_type": "image/png"}
    other = {"type": "user_input", "content": [{**img, "data": "REVG"}]}
    assert h({"type": "user_input", "content": [img]}) != h(other)
    assert h({"type": "user_input", "content": [img]}) != h({"type": "model_output", "content": [img]})
    assert h({"type": "user_input", "content": [{"type": "smell", "note": "a"}]}) != h(
        {"type": "user_input", "content": [{"type": "smell", "note": "b"}]})
    # Media by reference, and other blocks that happen to carry a "data" field, are hashed whole.
    by_uri = {"type": "image", "uri": "gs://b/cat.png", "mime_type": "image/png"}
    assert h({"type": "user_input", "content": [by_uri]}) != h({"type": "user_input", "content": [{**by_uri, "uri": "gs://b/dog.png"}]})
    smell = {"type": "smell", "data": "QUJD", "note": "a"}
    assert h({"type": "user_input", "content": [smell]}) != h({"type": "user_input", "content": [{**smell, "note": "b"}]})
    assert wire.context_hash(wire.EMPTY_CONTEXT, [u]) == h(u) and wire.context_hash(wire.EMPTY_CONTEXT, []) == wire.EMPTY_CONTEXT
    assert wire.context_hash(h(u), [m]) == h(u, m) != wire.context_hash(None, [m])


def test_media_below_the_threshold_stays_inline_and_a_reference_is_never_split_again():
    at = "A" * wire.MEDIA_MIN_CHARS
    below = at[:-1]
    req = {"input": [{"type": "image", "data": at, "mime_type": "image/png"},
                     {"type": "audio", "data": below}, {"type": "text", "text": at},
                     [{"type": "video", "data": at + "B"}]]}
    split, found = wire.split_media(req)
    assert [v[0] for v in found.values()] == ["image/png", None] and len(found) == 2
    assert split["input"][1] == req["input"][1] and split["input"][2] == req["input"][2]
    assert split["input"][0]["data"].startswith("convostore-media:sha256:") and split["input"][0]["mime_type"] == "image/png"
    again, more = wire.split_media(split)
    assert again == split and more == {}
    assert wire.split_media(req, min_chars=len(at) + 1)[1].keys() == {next(reversed(found))}
    assert wire.media_refs(split) == set(found) and wire.media_refs({"data": 1, "x": [[{"data": "plain"}]]}) == set()
    # A reference whose data is gone stays a reference; one found is joined back, however deep.
    first = next(iter(found))
    assert wire.join_media(split, lambda d: found[d][1] if d == first else None)["input"][3] == split["input"][3]
    assert wire.join_media(split, lambda d: found[d][1]) == req
    assert wire.has_media('{"data": 1}') and wire.has_media(b'{"data": 1}')
    assert not wire.has_media('{"text": "image"}') and not wire.has_media(b"{}")


def test_context_hashes_stay_what_earlier_versions_stored():
    """Stored and exported rows carry their context hash; a stateless call made with a newer
    convostore must still find the turn an older one recorded, so the hash never changes."""
    ada = [{"type": "user_input", "content": [{"type": "text", "text": "Hi, my name is Ada."}]},
           {"type": "model_output", "content": [{"type": "text", "text": "Hello Ada!"}]}]
    assert wire.context_hash(None, ada[:1]) == "88860f3ad5747fde3ffd3be4ac879438"
    assert wire.context_hash(None, ada) == "e93f1d3505d7acddd74b555f9cd1a03c"
    assert wire.EMPTY_CONTEXT == "0" * 32 == wire.context_hash(None, [])


def test_step_type_checks_answer_true_or_false():
    assert wire.is_step_type(None) is False and wire.is_step_type(5) is False and wire.is_step_type("text") is False
    assert all(wire.is_step_type(t) is True for t in ("user_input", "model_output", "thought", "user_action", "x_call", "x_result"))
    assert wire.is_input_step({"type": "user_action"}) and not wire.is_input_step({"type": "thought"})
