"""The Interactions API's two JSON generations, turned into one canonical form and back.

Everything convostore stores is in the current ``steps`` format (SDK 2.0+, ``/v1``),
whatever generation it came from, so history rebuilding, search and replay have one
shape to deal with. The retired 1.x form (``/v1beta``: ``outputs`` lists of content
blocks, stateless history as ``{role, content}`` turns) is converted on the way in and
can be produced again on the way out (``steps_to_turns``).

Unknown step and content types are kept as they are: the archive must be lossless.
All functions here are pure (no I/O) and never mutate their arguments.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from .errors import WireFormatError

Step = dict[str, Any]
Block = dict[str, Any]

#: Content block types: the parts a user or model message is made of.
CONTENT_TYPES = frozenset({"text", "image", "audio", "document", "video"})
#: Steps that carry the user's side of a turn.
INPUT_STEP_TYPES = frozenset({"user_input", "function_result", "user_action"})
#: isinstance(x, MAPPING): dicts answer at C speed, other mappings through the ABC.
MAPPING = (dict, Mapping)

#: Content blocks of the retired generation that are steps of their own now.
_STEP_LIKE_SUFFIXES = ("_call", "_result")

_MEDIA_TYPES = frozenset({"image", "audio", "video", "document"})
_MEDIA_PREFIX = "convostore-media:sha256:"
#: Inline media smaller than this stays inline: not worth a lookup.
MEDIA_MIN_CHARS = 1024


# --- classification -------------------------------------------------------------


def is_step_type(type_: Any) -> bool:
    """True for a step type of the current generation (known or future ``*_call``/``*_result``)."""
    if not isinstance(type_, str):
        return False
    return (
        type_ in ("user_input", "model_output", "thought", "user_action")
        or type_.endswith(_STEP_LIKE_SUFFIXES)
    )


def is_input_step(step: Mapping[str, Any]) -> bool:
    """The user's side of a turn: what a person or the application sent."""
    return step.get("type") in INPUT_STEP_TYPES


def _text_block(text: str) -> Block:
    return {"type": "text", "text": text}


def _as_blocks(content: Any) -> list[Block]:
    """A turn's or step's ``content`` (string, block, or list) as a list of blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [_text_block(content)]
    if isinstance(content, MAPPING):
        return [dict(content)]
    if isinstance(content, list):
        out: list[Block] = []
        for item in content:
            if isinstance(item, str):
                out.append(_text_block(item))
            elif isinstance(item, MAPPING):
                out.append(dict(item))
            else:
                raise WireFormatError(f"content item is neither text nor an object: {item!r:.80}")
        return out
    raise WireFormatError(f"content is neither text, an object nor a list: {content!r:.80}")


_SDK_MAJOR = re.compile(r"google-genai-sdk/(\d+)\.")


def request_schema(path_version: str, api_revision: str | None, api_client: str | None) -> str:
    """Which generation a request speaks: ``v1beta`` (retired ``outputs`` / turns) only for
    1.x clients. 2.x also calls ``/v1beta`` but speaks ``steps`` (2.0 says so with an
    ``Api-Revision`` header, later 2.x only by its ``x-goog-api-client`` version), so it
    is ``v1``. The sandbox answers by this and the proxy resumes by it."""
    if path_version != "v1beta":
        return path_version
    if api_revision:
        return "v1"
    sdk = _SDK_MAJOR.search(api_client or "")
    return "v1" if sdk and int(sdk.group(1)) >= 2 else "v1beta"


# --- into canonical steps -------------------------------------------------------


def _blocks_to_steps(blocks: Iterable[Block], role: str) -> list[Step]:
    """Retired content blocks of one role as current steps.

    Message parts (text, media) of consecutive blocks share one ``user_input`` or
    ``model_output`` step; thoughts, calls and results become steps of their own.
    """
    message_type = "user_input" if role == "user" else "model_output"
    steps: list[Step] = []
    pending: list[Block] = []

    def flush() -> None:
        if pending:
            steps.append({"type": message_type, "content": list(pending)})
            pending.clear()

    for block in blocks:
        btype = block.get("type")
        if is_step_type(btype) or btype in ("function_call", "function_result", "thought"):
            flush()
            steps.append(dict(block))
        else:
            pending.append(dict(block))
    flush()
    return steps


def _turn_to_steps(turn: Mapping[str, Any]) -> list[Step]:
    role = turn.get("role")
    if role not in ("user", "model"):
        raise WireFormatError(f"a turn's role must be 'user' or 'model', not {role!r}")
    return _blocks_to_steps(_as_blocks(turn.get("content")), role)


def _normalize_step(step: Mapping[str, Any]) -> Step:
    out = dict(step)
    if out.get("type") in ("user_input", "model_output") and "content" in out:
        out["content"] = _as_blocks(out["content"])
    return out


def normalize_input(value: Any) -> list[Step]:
    """Any accepted ``input`` form as a list of steps.

    Accepts a string, a content block, a list of content blocks, a list of steps,
    a list of retired ``{role, content}`` turns, or a mix of blocks and steps
    (consecutive blocks form one ``user_input`` step).
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "user_input", "content": [_text_block(value)]}]
    if isinstance(value, MAPPING):
        if "role" in value and "type" not in value:
            return _turn_to_steps(value)
        if is_step_type(value.get("type")):
            return [_normalize_step(value)]
        return [{"type": "user_input", "content": [dict(value)]}]
    if not isinstance(value, list):
        raise WireFormatError(f"input must be text, an object or a list, not {type(value).__name__}")
    steps: list[Step] = []
    pending: list[Block] = []
    for item in value:
        if isinstance(item, str):
            pending.append(_text_block(item))
            continue
        if not isinstance(item, MAPPING):
            raise WireFormatError(f"input item is neither text nor an object: {item!r:.80}")
        if "role" in item and "type" not in item:
            if pending:
                steps.append({"type": "user_input", "content": pending})
                pending = []
            steps.extend(_turn_to_steps(item))
        elif is_step_type(item.get("type")) or item.get("type") == "function_result":
            if pending:
                steps.append({"type": "user_input", "content": pending})
                pending = []
            steps.append(_normalize_step(item))
        elif "type" in item:
            pending.append(dict(item))
        else:
            raise WireFormatError(f"input item has neither 'type' nor 'role': {item!r:.80}")
    if pending:
        steps.append({"type": "user_input", "content": pending})
    return steps


def normalize_output(response: Mapping[str, Any] | None) -> list[Step]:
    """The model's side of a response body as steps (``steps`` or retired ``outputs``).

    For a ``GET`` body, which also carries the turn's input steps, use
    ``split_get_steps`` instead.
    """
    if not response:
        return []
    if response.get("steps") is not None:
        steps = [_normalize_step(s) for s in response["steps"] if isinstance(s, MAPPING)]
        return [s for s in steps if not is_input_step(s)]
    if response.get("outputs") is not None:
        return _blocks_to_steps(_as_blocks(response["outputs"]), "model")
    return []


def split_get_steps(
    response: Mapping[str, Any], sent: list[Step] | None = None
) -> tuple[list[Step], list[Step]]:
    """A response body's steps as (input steps, output steps), for a create or a ``GET``.

    A ``GET`` body carries the turn's input steps ahead of its outputs. Where they end
    is decided by ``sent``, the input the stored request actually sent (normalized):
    a rebuilt or self-managed turn's input holds model steps of the history it
    re-sent, so the step types alone cannot tell. Without ``sent``, or when the server
    re-encoded what was sent, the outputs are what follows the last input-kind step
    (a model's answer holds none); a create body (outputs only) splits as ``([], all)``.
    """
    if response.get("steps") is None:
        return normalize_input(response.get("input")), normalize_output(response)
    steps = [_normalize_step(s) for s in response["steps"] if isinstance(s, MAPPING)]
    if sent is not None:
        k = _sent_prefix(steps, sent)
        if k is not None:
            return steps[:k], steps[k:]
    i = len(steps)
    while i > 0 and not is_input_step(steps[i - 1]):
        i -= 1
    return steps[:i], steps[i:]


def _sent_prefix(steps: list[Step], sent: list[Step]) -> int | None:
    """How many leading ``steps`` are the ``sent`` input: exactly, else by meaning
    (``context_hash`` atoms: the same text, calls and results however the server
    grouped them into steps); None when they are not a prefix at all."""
    n = len(sent)
    if steps[:n] == sent:
        return n
    if not steps:
        return None
    wanted = next(iter(_atoms(sent)), None)
    if wanted is not None and next(iter(_atoms(steps)), None) != wanted:
        return None  # the hashes below can only meet if the atoms start alike (a create body: outputs only)
    target = context_hash(None, sent)
    h = EMPTY_CONTEXT
    for k, step in enumerate(steps, 1):
        h = context_hash(h, [step])
        if h == target and step.get("type") != "thought":
            return k
    return None


def split_history(steps: list[Step]) -> tuple[list[Step], list[Step]]:
    """A stateless input as (the history it repeats, the new turn's input).

    The new input is the trailing run of input-kind steps after the last model step;
    everything before it is history (empty when the call is a plain first turn).
    """
    i = len(steps)
    while i > 0 and is_input_step(steps[i - 1]):
        i -= 1
    return steps[:i], steps[i:]


# --- out of canonical steps -----------------------------------------------------


def steps_to_turns(steps: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Steps as retired ``{role, content}`` turns, for code written against SDK 1.x."""
    turns: list[dict[str, Any]] = []
    for step in steps:
        stype = step.get("type")
        if stype == "user_input":
            role, blocks = "user", _as_blocks(step.get("content"))
        elif stype == "model_output":
            role, blocks = "model", _as_blocks(step.get("content"))
        elif stype in INPUT_STEP_TYPES:
            role, blocks = "user", [dict(step)]
        else:
            role, blocks = "model", [dict(step)]
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": list(blocks)})
    return turns


def steps_to_outputs(steps: Iterable[Mapping[str, Any]]) -> list[Block]:
    """Output steps as a retired ``outputs`` list of content blocks."""
    out: list[Block] = []
    for step in steps:
        if step.get("type") == "model_output":
            out.extend(_as_blocks(step.get("content")))
        else:
            out.append(dict(step))
    return out


# --- text -----------------------------------------------------------------------


def _texts(steps: Iterable[Mapping[str, Any]], step_type: str) -> list[str]:
    texts: list[str] = []
    for step in steps:
        if step.get("type") != step_type:
            continue
        content = step.get("content")
        if isinstance(content, str):
            texts.append(content)
            continue
        for block in content or ():
            if isinstance(block, MAPPING) and block.get("type") == "text" and isinstance(block.get("text"), str):
                texts.append(block["text"])
    return texts


def input_text(steps: Iterable[Mapping[str, Any]]) -> str:
    """The text a person typed in these steps, for listing and search."""
    return "\n".join(_texts(steps, "user_input"))


def output_text(steps: Iterable[Mapping[str, Any]]) -> str:
    """The text the model answered in these steps, for listing and search."""
    return "\n".join(_texts(steps, "model_output"))


# --- context hash ---------------------------------------------------------------


def _atoms(steps: Iterable[Mapping[str, Any]]) -> Iterable[bytes]:
    """Each step's meaning as byte strings, ignoring how it was split into steps.

    Thoughts are left out: a person re-sending history often drops them, and a
    signature means nothing to the match.
    """
    dumps = orjson.dumps
    opt = orjson.OPT_SORT_KEYS
    for step in steps:
        stype = step.get("type")
        if stype == "thought":
            continue
        if stype in ("user_input", "model_output"):
            tag = b"u" if stype == "user_input" else b"m"
            for block in _as_blocks(step.get("content")):
                btype = block.get("type")
                if btype == "text":
                    yield tag + b"t" + str(block.get("text", "")).encode()
                elif btype in _MEDIA_TYPES and isinstance(block.get("data"), str):
                    yield tag + str(btype).encode() + _media_digest(block["data"]).encode()
                else:
                    yield tag + dumps(block, option=opt)
        elif stype == "function_call":
            yield b"fc" + dumps([step.get("name"), step.get("arguments")], option=opt)
        elif stype == "function_result":
            yield b"fr" + dumps([step.get("call_id"), step.get("result")], option=opt)
        else:
            rest = {k: v for k, v in step.items() if k not in ("signature",)}
            yield b"s" + dumps(rest, option=opt, default=str)


#: The hash of an empty context (a conversation's start).
EMPTY_CONTEXT = "0" * 32


def _media_digest(data: str) -> str:
    if data.startswith(_MEDIA_PREFIX):
        return data[len(_MEDIA_PREFIX) :]
    return hashlib.sha256(data.encode()).hexdigest()


def context_hash(prev_hash: str | None, steps: Iterable[Mapping[str, Any]]) -> str:
    """Rolling hash of a conversation's context after ``steps``.

    ``context_hash(context_hash(None, a), b) == context_hash(None, a + b)``, so a
    stored turn's hash (its parent's hash folded with its own input and output) equals
    the hash of a stateless call's repeated history, which links the two by content.
    """
    h = bytes.fromhex(prev_hash) if prev_hash and prev_hash != EMPTY_CONTEXT else b""
    for atom in _atoms(steps):
        h = hashlib.blake2b(h + b"\x00" + atom, digest_size=16).digest()
    return h.hex() if h else EMPTY_CONTEXT


# --- media ----------------------------------------------------------------------


def split_media(obj: Any, min_chars: int = MEDIA_MIN_CHARS) -> tuple[Any, dict[str, tuple[str | None, str]]]:
    """Inline base64 media replaced by a content-hash reference.

    Returns the new object and ``{sha256: (mime_type, base64 data)}``; the same
    image sent every turn is then stored once.
    """
    found: dict[str, tuple[str | None, str]] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            data = node.get("data")
            if (
                node.get("type") in _MEDIA_TYPES
                and isinstance(data, str)
                and len(data) >= min_chars
                and not data.startswith(_MEDIA_PREFIX)
            ):
                digest = _media_digest(data)
                found[digest] = (node.get("mime_type"), data)
                new = dict(node)
                new["data"] = _MEDIA_PREFIX + digest
                return new
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(obj), found


def join_media(obj: Any, lookup: Callable[[str], str | None]) -> Any:
    """References left by ``split_media`` replaced by the data ``lookup(sha256)`` returns."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, str) and data.startswith(_MEDIA_PREFIX):
                new = dict(node)
                restored = lookup(data[len(_MEDIA_PREFIX) :])
                if restored is not None:
                    new["data"] = restored
                return new
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(obj)


def media_refs(obj: Any) -> set[str]:
    """The content hashes an object refers to (to check the media table holds them all)."""
    refs: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            if isinstance(data, str) and data.startswith(_MEDIA_PREFIX):
                refs.add(data[len(_MEDIA_PREFIX) :])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(obj)
    return refs


def has_media(raw: str | bytes) -> bool:
    """Cheap pre-check on raw JSON text: skip the media walk for plain text exchanges."""
    needle = '"data"' if isinstance(raw, str) else b'"data"'
    return needle in raw  # type: ignore[operator]
