"""Server-sent event bytes → the interaction they assemble to.

A stream is archived as the interaction a non-streaming call would have returned, so
history, search and replay never see the difference. Both API generations are handled:
the current one (``interaction.created``, ``step.start|delta|stop``,
``interaction.completed``, ``data: [DONE]``) and the retired one
(``interaction.start``, ``content.start|delta|stop``, ``interaction.complete``).
Unknown events and delta types are merged as well as they can be, never dropped silently:
the raw events are kept next to the assembled body.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

#: Events after which the server sends nothing more for this interaction.
TERMINAL_EVENTS = frozenset({"interaction.completed", "interaction.complete"})

_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")


def parse_events(raw: bytes) -> tuple[list[dict[str, Any]], bool]:
    """Split an SSE body into its JSON ``data`` payloads; the flag says ``[DONE]`` was seen."""
    events: list[dict[str, Any]] = []
    done = False
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    for block in _BOUNDARY.split(raw):
        if not block.strip():
            continue
        data_lines = []
        for line in block.splitlines():
            if line.startswith(b"data:"):
                value = line[5:]
                data_lines.append(value[1:] if value.startswith(b" ") else value)
        if not data_lines:
            continue
        data = b"\n".join(data_lines)
        if data.strip() == b"[DONE]":
            done = True
            continue
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue  # a block cut short by an abandoned stream
        if isinstance(event, dict):
            events.append(event)
    return events, done


def _merge_text_block(content: list[dict[str, Any]], delta: dict[str, Any]) -> None:
    """Append a delta block to a content list, joining consecutive text."""
    if delta.get("type") == "text" and content and content[-1].get("type") == "text" and "text" in content[-1]:
        content[-1] = {**content[-1], "text": content[-1]["text"] + (delta.get("text") or "")}
    else:
        content.append(dict(delta))


def _apply_delta(item: dict[str, Any], delta: dict[str, Any], args_buf: dict[int, str], index: int) -> None:
    """Fold one delta into a step (current API) or an output block (retired API)."""
    dtype = delta.get("type")
    if dtype == "thought_signature":
        if delta.get("signature") is not None:
            item["signature"] = delta["signature"]
    elif dtype == "thought_summary":
        summary = item.setdefault("summary", [])
        block = delta.get("content")
        if isinstance(block, dict):
            _merge_text_block(summary, block)
        elif isinstance(block, list):
            for b in block:
                if isinstance(b, dict):
                    _merge_text_block(summary, b)
    elif dtype == "arguments_delta":
        args_buf[index] = args_buf.get(index, "") + (delta.get("arguments") or "")
    elif dtype == "text" and item.get("type") == "text":  # retired API: the block is the text
        item["text"] = item.get("text", "") + (delta.get("text") or "")
    elif "content" in item and isinstance(item["content"], list) and dtype in (
        "text", "image", "audio", "document", "video"
    ):
        _merge_text_block(item["content"], delta)
    elif item.get("type") == "model_output" and dtype in ("text", "image", "audio", "document", "video"):
        item["content"] = []
        _merge_text_block(item["content"], delta)
    else:
        # function_call / tool deltas of the retired API carry whole fields: merge them.
        for key, value in delta.items():
            if key == "type" and "type" in item:
                continue
            item[key] = value


def _finish_arguments(items: dict[int, dict[str, Any]], args_buf: dict[int, str]) -> None:
    for index, text in args_buf.items():
        item = items.get(index)
        if item is None:
            continue
        try:
            item["arguments"] = orjson.loads(text) if text else {}
        except orjson.JSONDecodeError:
            item["arguments"] = text  # cut short: keep what arrived


def assemble(raw: bytes, limit: int | None = None) -> tuple[dict[str, Any] | None, bool]:
    """The interaction a stream's bytes describe, and whether the stream reached its end.

    Returns ``(body, terminal)``: ``body`` is None when not even the first event arrived.
    ``terminal`` is True once ``interaction.completed`` (or ``[DONE]``) was seen.
    ``limit``: use only the first ``limit`` events (those the caller actually read).
    """
    events, done = parse_events(raw)
    if limit is not None and limit < len(events):
        events, done = events[:limit], False
    return assemble_events(events, done)


def assemble_events(events: list[dict[str, Any]], done: bool = False) -> tuple[dict[str, Any] | None, bool]:
    """``assemble`` over already parsed events."""
    body: dict[str, Any] | None = None
    items: dict[int, dict[str, Any]] = {}
    args_buf: dict[int, str] = {}
    retired = False
    terminal = done
    final: dict[str, Any] | None = None
    for event in events:
        etype = event.get("event_type")
        if etype in ("interaction.created", "interaction.start"):
            retired = etype == "interaction.start"
            inter = event.get("interaction")
            if isinstance(inter, dict):
                body = {**(body or {}), **inter}
        elif etype == "interaction.status_update":
            body = body or {}
            for key in ("status", "usage", "continuation_token"):
                if key in event:
                    body[key] = event[key]
            if "interaction_id" in event and "id" not in body:
                body["id"] = event["interaction_id"]
        elif etype in ("step.start", "content.start"):
            retired = retired or etype == "content.start"
            index = event.get("index", len(items))
            payload = event.get("content" if etype == "content.start" else "step")
            items[index] = dict(payload) if isinstance(payload, dict) else {}
        elif etype in ("step.delta", "content.delta"):
            index = event.get("index", max(items, default=0))
            delta = event.get("delta")
            if isinstance(delta, dict):
                item = items.setdefault(index, {})
                if not item and etype == "content.delta":
                    item["type"] = delta.get("type")
                _apply_delta(item, delta, args_buf, index)
        elif etype in TERMINAL_EVENTS:
            terminal = True
            inter = event.get("interaction")
            if isinstance(inter, dict):
                final = inter
        elif etype == "error":
            body = body or {}
            body["error"] = event.get("error", event)
    if body is None and final is None and not items:
        return None, terminal
    _finish_arguments(items, args_buf)
    body = dict(body or {})
    if final:
        for key, value in final.items():
            if key in ("steps", "outputs") and not value:
                continue
            body[key] = value
    key = "outputs" if retired else "steps"
    assembled = [items[i] for i in sorted(items)]
    if assembled or key not in body:
        body[key] = assembled
    return body, terminal
