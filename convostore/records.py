"""One raw HTTP exchange → one interaction row (a plain dict of column values).

The recorder, the importer and the replay engine all build rows here, so a row that
is exported (raw request + raw response + local metadata) and imported again comes
out identical. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from . import wire
from .errors import WireFormatError

#: Named retention settings: how long the server keeps an interaction.
RETENTION = {"free": timedelta(days=1), "paid": timedelta(days=55)}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

#: Columns a caller may set through ``extra`` (annotations, import metadata).
EXTRA_FIELDS = frozenset(
    {
        "id", "conversation_id", "parent_id", "link", "labels", "server_state", "expires_at",
        "replay_run_id", "source_id", "recorded_at", "latency_ms", "partial", "status", "hop_index",
        "context_hash",
    }
)


def retention_delta(retention: str | int | float | timedelta | None) -> timedelta:
    """``free`` (1 day), ``paid`` (55 days), seconds, or a duration like ``'2d'``/``'12h'``."""
    if retention is None:
        return RETENTION["paid"]
    if isinstance(retention, timedelta):
        return retention
    if isinstance(retention, (int, float)):
        return timedelta(seconds=retention)
    key = str(retention).strip().lower()
    if key in RETENTION:
        return RETENTION[key]
    match = _DURATION.match(key)
    if not match:
        raise ValueError(f"retention must be 'free', 'paid', seconds or a duration like '2d', not {retention!r}")
    return timedelta(seconds=float(match.group(1)) * _UNIT[match.group(2)])


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 text (as the API writes it) or a datetime, as an aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = str(value)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _usage_tokens(usage: Mapping[str, Any] | None) -> tuple[int | None, int | None, int | None]:
    if not isinstance(usage, wire.MAPPING):
        return None, None, None
    inp = usage.get("total_input_tokens", usage.get("input_tokens"))
    out = usage.get("total_output_tokens", usage.get("output_tokens"))
    total = usage.get("total_tokens")
    if total is None and (inp is not None or out is not None):
        total = (inp or 0) + (out or 0)
    return inp, out, total


def row_from_exchange(
    request: Mapping[str, Any] | None,
    response: Mapping[str, Any] | None,
    *,
    api_version: str,
    recorded_at: datetime,
    latency_ms: float | None = None,
    stream: bool = False,
    error: Mapping[str, Any] | str | None = None,
    hop_index: int = 0,
    partial: bool = False,
    retention: str | int | float | timedelta | None = "paid",
    extra: Mapping[str, Any] | None = None,
    sent_input: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The row for one exchange, in either API generation's shape.

    ``response`` may be a create response (output steps only) or a ``GET`` body (which
    also carries the turn's input); ``None`` for a failed attempt. The two are told
    apart by what the turn sent: ``request["input"]``, or ``sent_input`` (the stored
    row's input steps) when a later ``GET`` is read without its request.
    """
    request = dict(request or {})
    response = dict(response or {})
    if sent_input is None and "input" in request:
        try:
            sent_input = wire.normalize_input(request.get("input"))
        except WireFormatError:
            if not error:
                raise
            # A create refused before sending (a malformed input): still one failed row;
            # the raw request keeps the input as the caller gave it.
            sent_input = []
    get_inputs, output_steps = wire.split_get_steps(response, sent_input)
    input_steps = sent_input if sent_input is not None else get_inputs
    usage = response.get("usage")
    inp, out, total = _usage_tokens(usage)
    stored = request.get("store", response.get("store", True)) is not False
    created = parse_time(response.get("created"))
    recorded_at = parse_time(recorded_at) or datetime.now(timezone.utc)
    status = response.get("status") or ("failed" if error else None)
    row: dict[str, Any] = {
        "id": response.get("id"),
        "previous_interaction_id": request.get("previous_interaction_id") or response.get("previous_interaction_id"),
        "model": response.get("model") or request.get("model"),
        "agent": response.get("agent") or request.get("agent"),
        "status": status,
        "partial": bool(partial),
        "store": stored,
        "background": bool(request.get("background", False)),
        "stream": bool(stream or request.get("stream", False)),
        "request": request,
        "response": response or None,
        "input_steps": input_steps,
        "output_steps": output_steps,
        # The turn's own words: a stateless call's re-sent history is already in the
        # archive (input_steps keep everything, losslessly).
        "input_text": wire.input_text(wire.split_history(input_steps)[1]),
        "output_text": wire.output_text(output_steps),
        "usage": usage if isinstance(usage, wire.MAPPING) else None,
        "input_tokens": inp,
        "output_tokens": out,
        "total_tokens": total,
        "created": created,
        "updated": parse_time(response.get("updated")),
        "recorded_at": recorded_at,
        "latency_ms": latency_ms,
        "expires_at": ((created or recorded_at) + retention_delta(retention)) if stored else None,
        "server_state": "live" if stored else "not_stored",
        "labels": request.get("labels") or None,
        "error": {"message": error} if isinstance(error, str) else (dict(error) if error else None),
        "hop_index": hop_index,
        "api_version": api_version,
    }
    if status == "failed" and error and not response:
        row["server_state"] = "not_stored"
        row["expires_at"] = None
    for key, value in (extra or {}).items():
        if key not in EXTRA_FIELDS:
            continue
        if key == "labels" and isinstance(value, wire.MAPPING) and isinstance(row["labels"], wire.MAPPING):
            row["labels"] = {**row["labels"], **value}
        elif key in ("recorded_at", "expires_at"):
            row[key] = parse_time(value)
        else:
            row[key] = value
    return row
