"""The ``body`` column (migration 0008): an interaction's JSON in one compact value.

Until 0008 a row kept its raw request and response and, beside them, the input steps,
output steps and usage derived from them, all as JSON text: 2.4x the bytes of the
JSONL export. ``pack`` keeps the request and response only, plus whichever of the
derived parts ``records.row_from_exchange`` would not derive again the same way (a
GET-refreshed row, a hand-made one); strings equal to the row's ``input_text`` or
``output_text`` (kept as columns for search and listing) are left out and named by
their path; the result is deflated with a preset dictionary of the API's JSON when
that is shorter. ``unpack`` gives the same values back: lossless by construction,
since every omission is checked at write time against what a read will rebuild.

Format: one tag byte, then the payload: orjson of ``{q: request, r: response}`` (plus
``i``/``o``/``u``: input steps, output steps, usage, where stored). Tag bit 0: the
payload is raw deflate (``wbits=-15``) with ``_DICT_1`` as the preset dictionary. Tag
bit 1: the JSON strings equal to the input and output text stand as ``_REFS`` (strings
no JSON text holds unless it held them already, in which case bit 1 stays clear). A
future dictionary takes new tags; the old ones must stay readable as they are. Pure.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import orjson

from .. import wire
from ..errors import StoreError, WireFormatError

DEFLATE_1, TEXT_REFS = 0x01, 0x02
_KNOWN = 0x03
#: What stands for the input text and the output text in a payload (JSON strings).
_REFS = (orjson.dumps("\x00\x01i"), orjson.dumps("\x00\x01o"))
#: Texts shorter than this stay inline (a path costs about as much).
MIN_TEXT = 12
#: Payloads shorter than this are not worth a deflate attempt.
MIN_DEFLATE = 64

# Frequent JSON of the Interactions API (both generations) and of convostore's rows: a
# small row's deflate finds its keys here instead of spelling them out. Frozen with tag 0x01.
_DICT_1 = orjson.dumps([
    {"type": "function_result", "name": "", "call_id": "", "result": {}},
    {"type": "function_call", "id": "", "name": "", "arguments": {}},
    {"type": "thought", "signature": "", "summary": [{"type": "text", "text": ""}]},
    {"object": "interaction", "role": "model", "outputs": [{"type": "text", "text": ""}]},
    {"error": {"code": 400, "message": "", "status": "INVALID_ARGUMENT"}},
    {"generation_config": {"temperature": 1.0, "max_output_tokens": 1024, "thinking_level": "low"},
     "system_instruction": "", "tools": [], "store": False, "background": True, "stream": True},
    {"total_input_tokens": 0, "total_output_tokens": 0, "total_thought_tokens": 0, "total_cached_tokens": 0,
     "total_tool_use_tokens": 0, "total_tokens": 0},
    {"status": "requires_continuation", "continuation_token": ""},
    {"status": "in_progress", "previous_interaction_id": "", "agent": "deep-research-pro-preview-12-2025"},
    {"model": "gemini-2.5-pro"}, {"model": "gemini-3-pro-preview"}, {"model": "gemini-2.5-flash-lite"},
    {"model": "gemini-3-flash-preview", "input": [{"type": "user_input", "content": [{"type": "text", "text": ""}]}]},
    {"q": {"model": "gemini-2.5-flash", "input": "\u0000\u0001i"},
     "r": {"id": "v1_", "status": "completed", "model": "gemini-2.5-flash", "created": "2026-11-27T12:00:00Z",
           "updated": "2026-11-27T12:00:00Z",
           "steps": [{"type": "model_output", "content": [{"type": "text", "text": "\u0000\u0001o"}]}],
           "usage": {"total_input_tokens": 0, "total_output_tokens": 0, "total_tokens": 0}},
     },
])


class MediaFound(Exception):
    """``pack(refuse_media=True)`` met what may be inline media."""


# Compressors primed with the dictionary, copied per row (setting the dictionary and
# allocating a 32 KiB window each time cost more than the deflate of a small row). A
# small row needs no large window; inflating with -15 reads either.
_SMALL = zlib.compressobj(6, zlib.DEFLATED, -12, 4, zdict=_DICT_1)
_SMALL_MAX = 2048
_LARGE = zlib.compressobj(6, zlib.DEFLATED, -15, 8, zdict=_DICT_1)


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=str)


def _sent(request: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """What the turn sent, as ``row_from_exchange`` reads it (None: not in the request)."""
    if "input" not in request:
        return None
    try:
        return wire.normalize_input(request.get("input"))
    except WireFormatError:
        return []  # row_from_exchange's failed-row case; a mismatch is stored explicitly


def _derived(request: Mapping[str, Any], response: Any, sent: list[dict[str, Any]] | None) -> tuple[Any, Any]:
    """(input steps, output steps) as a read rebuilds them from request and response."""
    inputs, outputs = wire.split_get_steps(response if isinstance(response, Mapping) else {}, sent)
    return (sent if sent is not None else inputs), outputs


def _usage(response: Any) -> Any:
    usage = response.get("usage") if isinstance(response, Mapping) else None
    return usage if isinstance(usage, Mapping) else None


def pack(
    request: Any,
    response: Any,
    input_steps: Any,
    output_steps: Any,
    usage: Any,
    input_text: str | None,
    output_text: str | None,
    *,
    refuse_media: bool = False,
) -> bytes:
    """The ``body`` value for these parts of a row (see the module docstring).

    ``refuse_media``: raise ``MediaFound`` when the parts may carry inline media (which
    the general write path splits out into the media table first)."""
    request = request if request is not None else {}
    p: dict[str, Any] = {"q": request, "r": response}
    if isinstance(request, Mapping):
        sent = _sent(request)
        inputs, outputs = _derived(request, response, sent)
        if _dumps(input_steps or []) != _dumps(inputs):
            p["i"] = input_steps
            inputs, outputs = _derived(request, response, input_steps or [])
        if _dumps(output_steps or []) != _dumps(outputs):
            p["o"] = output_steps
        if _dumps(usage) != _dumps(_usage(response)):
            p["u"] = usage
    else:  # not an object: nothing derives from it
        p.update(i=input_steps, o=output_steps, u=usage)
    raw = _dumps(p)
    if refuse_media and ((len(raw) >= wire.MEDIA_MIN_CHARS and wire.has_media(raw)) or b"convostore-media:" in raw):
        raise MediaFound
    tag = 0
    if _REFS[0] not in raw and _REFS[1] not in raw:
        # Byte-level and exact: a JSON string's text has no unescaped quote, so an encoded
        # text matches only whole strings, and a marker can only come from this swap.
        for text, ref in zip((input_text, output_text), _REFS):
            if isinstance(text, str) and len(text) >= MIN_TEXT:
                swapped = raw.replace(_dumps(text), ref)
                if swapped != raw:
                    raw, tag = swapped, TEXT_REFS
    if len(raw) >= MIN_DEFLATE:
        c = (_SMALL if len(raw) <= _SMALL_MAX else _LARGE).copy()
        packed = c.compress(raw) + c.flush()
        if len(packed) < len(raw):
            return bytes((tag | DEFLATE_1,)) + packed
    return bytes((tag,)) + raw


def payload(body: bytes, input_text: str | None, output_text: str | None) -> bytes:
    """The orjson text a ``body`` holds, its texts put back."""
    tag, data = body[0], bytes(body[1:])
    if tag & ~_KNOWN:
        raise StoreError(f"unknown body format {tag:#04x} (written by a newer convostore?)")
    if tag & DEFLATE_1:
        d = zlib.decompressobj(-15, zdict=_DICT_1)
        data = d.decompress(data) + d.flush()
    if tag & TEXT_REFS:
        for text, ref in zip((input_text, output_text), _REFS):
            if ref in data:
                if text is None:
                    raise StoreError("a packed row refers to its text, which is missing (changed by hand?)")
                data = data.replace(ref, _dumps(text))
    return data


def load(body: bytes, input_text: str | None, output_text: str | None) -> dict[str, Any]:
    """The pack: ``q`` request, ``r`` response, and ``i``/``o``/``u`` where stored."""
    p: dict[str, Any] = orjson.loads(payload(body, input_text, output_text))
    return p


def unpack(body: bytes, input_text: str | None, output_text: str | None) -> tuple[Any, Any, Any, Any, Any]:
    """(request, response, input steps, output steps, usage) of a packed row."""
    p = load(body, input_text, output_text)
    return (p["q"], p["r"], *derived(p))


def derived(p: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(input steps, output steps, usage) of a pack: stored, or rebuilt as ``pack`` checked."""
    request, response = p["q"], p["r"]
    if isinstance(request, dict):
        sent = (p["i"] or []) if "i" in p else _sent(request)
        inputs, outputs = _derived(request, response, sent)
        if "i" in p:
            inputs = p["i"]
        if "o" in p:
            outputs = p["o"]
        usage = p["u"] if "u" in p else _usage(response)
    else:
        inputs, outputs, usage = p.get("i"), p.get("o"), p.get("u")
    return inputs, outputs, usage
