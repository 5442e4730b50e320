"""history(): a stored chain becomes the stateless input that continues it."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convostore import wire
from convostore.errors import NotFoundError
from convostore.rebuild import history
from convostore.records import row_from_exchange

MODELS = ("gemini-3-flash-preview", "gemini-3-pro-preview")

turn_spec = st.fixed_dictionaries(
    {
        "text": st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30),
        "model": st.sampled_from(MODELS),
        "thought": st.booleans(),
        "call": st.booleans(),
    }
)


def save_chain(store, specs):
    """Saves turns as the recorder would: raw request and response per interaction."""
    prev = None
    pending_call = None
    ids = []
    for i, spec in enumerate(specs):
        iid = f"v1_{uuid.uuid4().hex}"
        if pending_call:
            inputs = [{"type": "function_result", "call_id": pending_call, "name": "lookup", "result": f"result {i}"}]
        else:
            inputs = [{"type": "user_input", "content": [{"type": "text", "text": spec["text"]}]}]
        request = {"model": spec["model"], "input": inputs, "system_instruction": f"be brief {i}"}
        if prev:
            request["previous_interaction_id"] = prev
        steps = []
        if spec["thought"]:
            steps.append({"type": "thought", "signature": f"sig-{iid}-{spec['model']}"})
        pending_call = None
        if spec["call"]:
            pending_call = f"call-{i}"
            steps.append({"type": "function_call", "id": pending_call, "name": "lookup", "arguments": {"q": spec["text"]}})
            status = "requires_action"
        else:
            steps.append({"type": "model_output", "content": [{"type": "text", "text": f"answer {i}"}]})
            status = "completed"
        response = {"id": iid, "status": status, "model": spec["model"], "steps": steps, "created": "2026-11-24T10:00:00Z"}
        store.save(row_from_exchange(request, response, api_version="v1", recorded_at=datetime.now(timezone.utc)))
        ids.append(iid)
        prev = iid
    return ids


@given(specs=st.lists(turn_spec, min_size=1, max_size=12), target=st.sampled_from(MODELS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_history_keeps_order_pairs_and_only_the_targets_signatures(sqlite_store, specs, target):
    ids = save_chain(sqlite_store, specs)
    h = history(sqlite_store, ids[-1], model=target)
    assert h.turns == len(specs)
    assert h.system_instruction == f"be brief {len(specs) - 1}"

    # Thoughts: kept byte for byte for the model that made them, dropped for any other.
    sigs = [s["signature"] for s in h.input if s["type"] == "thought"]
    assert sigs == [f"sig-{iid}-{sp['model']}" for iid, sp in zip(ids, specs) if sp["thought"] and sp["model"] == target]

    # Everything else, in order: each turn's input then its output.
    plain = [s for s in h.input if s["type"] != "thought"]
    assert len([s for s in plain if wire.is_input_step(s)]) == len(specs)
    # Every function call is answered by the next input step, with the same id.
    for i, step in enumerate(plain):
        if step["type"] == "function_call" and i + 1 < len(plain):
            assert plain[i + 1]["type"] == "function_result" and plain[i + 1]["call_id"] == step["id"]


def test_history_formats_and_errors(sqlite_store):
    ids = save_chain(sqlite_store, [{"text": "my name is Ada", "model": MODELS[0], "thought": True, "call": False}] * 2)
    turns = history(sqlite_store, ids[-1], format="turns").input
    assert [t["role"] for t in turns] == ["user", "model", "user", "model"]
    with pytest.raises(NotFoundError):
        history(sqlite_store, "v1_missing")
    with pytest.raises(ValueError):
        history(sqlite_store, ids[-1], format="xml")  # type: ignore[arg-type]


def test_stateless_turns_are_not_duplicated(sqlite_store):
    """A turn whose input repeats the history counts only its new part."""
    ids = save_chain(sqlite_store, [{"text": "my name is Ada", "model": MODELS[0], "thought": False, "call": False}])
    first = sqlite_store.get(ids[0])
    repeated = first.input_steps + first.output_steps + [{"type": "user_input", "content": [{"type": "text", "text": "name?"}]}]
    request = {"model": MODELS[0], "input": repeated}
    response = {"id": "v1_stateless", "status": "completed", "steps": [{"type": "model_output", "content": [{"type": "text", "text": "Ada"}]}]}
    sqlite_store.save(row_from_exchange(request, response, api_version="v1", recorded_at=datetime.now(timezone.utc)))
    row = sqlite_store.get("v1_stateless")
    assert (row.parent_id, row.link) == (ids[0], "stateless")
    h = history(sqlite_store, "v1_stateless")
    assert wire.input_text(h.input).split("\n") == ["my name is Ada", "name?"]
