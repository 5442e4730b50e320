"""Deterministic models that prove what context reached them.

Every model "listens": its answer depends only on its name and the full context it
was given, so a replay is reproducible and two models word things differently. Told
"my name is X" in an earlier turn, it answers "what is my name?" with X, and only if
that history reached it. Each answer ends with how many user turns it saw.

Triggers (in the user's text):
- ``use <fn> for <arg>`` / ``call <fn> ...`` with ``tools`` declaring ``<fn>``: a
  ``function_call`` step (status ``requires_action``); a following ``function_result``
  step is quoted in the answer.
- ``[continue:N]``: the answer arrives over N+1 continuation hops (status
  ``requires_continuation`` with a ``continuation_token`` N times).
- Thinking models (names starting ``gemini-3``) emit a ``thought`` step with a
  deterministic ``signature`` before the answer.
- Judge models (names containing ``judge``, e.g. ``sandbox-judge``) grade the
  ``<original>`` and ``<replay>`` sections of the prompt ``convostore.judging`` sends:
  ``{"score": <word similarity>, "reason": "..."}``, the same for the same pair.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from .. import wire

_NAME = re.compile(r"\bmy name is ([A-Z][\w-]*)", re.IGNORECASE)
_ASK_NAME = re.compile(r"\b(what(?:'s| is) my name|my name\?|remember my name|who am i)\b", re.IGNORECASE)
_CALL = re.compile(r"\b(?:use|call)\s+([A-Za-z_][\w]*)(?:\s+(?:for|with|on)\s+([\w -]+))?", re.IGNORECASE)
_LIKE = re.compile(r"\bI (?:also )?like (?:to play |playing |watching )?([\w -]+?)(?:[.,!]|$)", re.IGNORECASE)
_CONTINUE = re.compile(r"\[continue:(\d+)\]")

_ACKS = ("Sure.", "Of course!", "Certainly.", "Happy to help.", "Right.", "Alright.", "Gladly.", "Okay.")
_NOTES = ("Noted.", "Got it!", "Understood.", "Thanks for telling me.", "I see.", "Interesting.", "Good to know.")


def is_thinking(model: str) -> bool:
    return model.startswith("gemini-3") or model.startswith("models/gemini-3")


def _style(model: str) -> tuple[str, str]:
    """A model's own wording: two hash-picked phrases (56 combinations)."""
    h = int(hashlib.sha256(model.encode()).hexdigest(), 16)
    return _ACKS[h % len(_ACKS)], _NOTES[(h // len(_ACKS)) % len(_NOTES)]


def signature(model: str, context: list[dict[str, Any]]) -> str:
    """The thought signature this model issues for this context (opaque to others)."""
    digest = hashlib.sha256(f"{model}|{wire.context_hash(None, context)}".encode()).digest()
    return base64.b64encode(b"sbx1" + digest).decode()


def continuation_count(context: list[dict[str, Any]]) -> int:
    _, new = wire.split_history(context)
    match = _CONTINUE.search(wire.input_text(new))
    return int(match.group(1)) if match else 0


_SECTION = re.compile(r"<(original|replay)>\n(.*?)\n</\1>", re.S)


def judge(prompt: str) -> str:
    """A deterministic grade: the word similarity of the prompt's original and replay, as JSON."""
    import difflib

    import orjson

    parts = {m.group(1): m.group(2) for m in _SECTION.finditer(prompt)}
    a, b = parts.get("original", "").split(), parts.get("replay", "").split()
    score = round(difflib.SequenceMatcher(None, a, b, autojunk=False).ratio(), 2) if (a or b) else 1.0
    same = sum(block.size for block in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks())
    reason = f"{same} of {max(len(a), len(b))} words in the same order as the original"
    return orjson.dumps({"score": score, "reason": reason}).decode()


def answer(model: str, context: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> tuple[list[dict[str, Any]], str]:
    """Output steps and status for ``context`` (all prior steps plus the new input)."""
    if "judge" in model:
        _, new = wire.split_history(context)
        return [{"type": "model_output", "content": [{"type": "text", "text": judge(wire.input_text(new))}]}], "completed"
    user_texts = [wire.input_text([s]) for s in context if s.get("type") == "user_input"]
    _, new = wire.split_history(context)
    question = wire.input_text(new)
    ack, note = _style(model)
    evidence = f"(I have seen {len(user_texts)} user turn{'s' if len(user_texts) != 1 else ''}.)"
    steps: list[dict[str, Any]] = []
    if is_thinking(model):
        steps.append(
            {
                "type": "thought",
                "signature": signature(model, context),
                "summary": [{"type": "text", "text": f"Thinking about: {question[:60]}"}],
            }
        )

    results = [s for s in new if s.get("type") == "function_result"]
    if results:
        parts = [f"{r.get('name') or 'the function'} returned {_flat(r.get('result'))}" for r in results]
        text = f"{ack} " + "; ".join(parts) + f". {evidence}"
        steps.append({"type": "model_output", "content": [{"type": "text", "text": text}]})
        return steps, "completed"

    declared = {t.get("name") for t in tools or () if isinstance(t, dict)}
    for t in tools or ():
        for fd in t.get("function_declarations", ()) if isinstance(t, dict) else ():
            declared.add(fd.get("name"))
    call = _CALL.search(question)
    if call and call.group(1) in declared:
        name, arg = call.group(1), (call.group(2) or question).strip()
        call_id = "call_" + hashlib.sha256(f"{model}|{wire.context_hash(None, context)}".encode()).hexdigest()[:12]
        steps.append({"type": "function_call", "id": call_id, "name": name, "arguments": _arguments(name, arg)})
        return steps, "requires_action"

    names = [m.group(1) for t in user_texts for m in _NAME.finditer(t)]
    likes = [m.group(1).strip() for t in user_texts[:-1] for m in _LIKE.finditer(t)]
    if _ASK_NAME.search(question):
        text = f"{ack} Your name is {names[-1]}." if names else f"{ack} I don't know your name yet."
    elif re.search(r"\bwhat do i like|which \w+ do i like\b", question, re.IGNORECASE):
        text = f"{ack} You like {', '.join(likes)}." if likes else f"{ack} You haven't told me what you like."
    elif _NAME.search(question):
        text = f"{ack} Nice to meet you, {_NAME.search(question).group(1)}."  # type: ignore[union-attr]
    else:
        shown = " ".join(question.split())[:120]
        text = f"{note} You said: {shown}" if shown else f"{note}"
    if not text.startswith(note):
        text = f"{text} {note}"
    steps.append({"type": "model_output", "content": [{"type": "text", "text": f"{text} {evidence}"}]})
    return steps, "completed"


def _arguments(name: str, arg: str) -> dict[str, Any]:
    arg = arg.rstrip(".?! ")
    if "weather" in name:
        return {"city": arg}
    return {"query": arg}


def _flat(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "items" in value:
        return " ".join(_flat(v) for v in value["items"])
    import orjson

    return orjson.dumps(value).decode()


def usage(context: list[dict[str, Any]], output: list[dict[str, Any]]) -> dict[str, int]:
    """Token counts: words, roughly, so they grow with the context as real ones do."""
    inp = sum(len(wire.input_text([s]).split()) + len(wire.output_text([s]).split()) for s in context) + len(context)
    out = sum(len(wire.output_text([s]).split()) for s in output) + len(output)
    thought = sum(1 for s in output if s.get("type") == "thought") * 8
    return {
        "total_input_tokens": inp,
        "total_output_tokens": out,
        "total_thought_tokens": thought,
        "total_tokens": inp + out + thought,
    }
