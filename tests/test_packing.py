"""A row saved comes back exactly as given, however little of it derives from the
exchange: ``body`` (0008) leaves out only what a read rebuilds the same."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convostore.records import row_from_exchange

_ids = itertools.count()
_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
# Short strings, and ones long enough to be left out of the body as the row's text.
_text = st.text(_chars, max_size=8) | st.text(_chars, min_size=12, max_size=60)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | _text,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(_text, kids, max_size=4),
    max_leaves=12,
)
_block = st.fixed_dictionaries({"type": st.just("text"), "text": _text})
_step = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["user_input", "model_output"]), "content": st.lists(_block, max_size=3)}),
    st.fixed_dictionaries({"type": st.just("function_call"), "name": _text, "arguments": _json}),
    st.fixed_dictionaries({"type": st.just("thought"), "signature": _text}),
)
_input = st.one_of(_text, st.lists(_step, max_size=4), st.lists(_block, max_size=3))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    user=_input,
    steps=st.lists(_step, max_size=4),
    usage=st.one_of(st.none(), st.dictionaries(st.sampled_from(["total_input_tokens", "total_thought_tokens",
                                                                 "total_cached_tokens", "total_tokens"]),
                                               st.integers(0, 2**31 - 1))),
    extra=st.dictionaries(_text.map(lambda k: "x_" + k), _json, max_size=3),  # fields the API may add
    override=st.one_of(st.none(), st.tuples(st.lists(_step, max_size=2), st.lists(_step, max_size=2), _text, _text)),
    big=st.booleans(),
)
def test_a_saved_row_reads_back_exactly(store, user, steps, usage, extra, override, big):
    iid = f"p{next(_ids)}"
    request = {"model": "m", "input": user, **({"note": "x" * 5000} if big else {})}
    response = {"id": iid, "status": "completed", "steps": steps, **extra}
    if usage is not None:
        response["usage"] = usage
    row = row_from_exchange(request, response, api_version="v1", recorded_at=datetime.now(timezone.utc))
    if override:  # steps and texts set apart from the exchange (a hand-made or refreshed row)
        row["input_steps"], row["output_steps"], row["input_text"], row["output_text"] = override
    store.save(row)
    got = store.get(iid)
    for key in ("request", "response", "input_steps", "output_steps", "usage", "input_text", "output_text"):
        assert orjson.dumps(getattr(got, key)) == orjson.dumps(row[key] if key != "input_steps" else row[key] or []), key
