"""Row encoding: a row dict to column values (both write paths) and stored rows back to
``Row``/``Turn``/``Run`` objects. Pure functions over the table definitions, no I/O."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
from sqlalchemy import Table, column

from .. import wire
from . import packing
from .models import Interaction, Media, ReplayRun

# SQLModel sets ``__table__`` on table classes when they are created; its stubs do not say so.
T: Table = Interaction.__table__  # type: ignore[attr-defined]
M: Table = Media.__table__  # type: ignore[attr-defined]
R: Table = ReplayRun.__table__  # type: ignore[attr-defined]

#: JSON columns: row key → column name.
_JSON = {
    "request": "request_json",
    "response": "response_json",
    "input_steps": "input_steps",
    "output_steps": "output_steps",
    "usage": "usage_json",
    "labels": "labels",
    "error": "error",
}
_COLUMNS = frozenset(T.c.keys())
_COLUMN_ORDER = tuple(T.c.keys())
_RUN_JSON = ("settings", "summary")
MAX_DEPTH = 1_000_000


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, default=str).decode()


#: Row keys packed into ``body`` (with input_text/output_text, which it refers to).
BODY_KEYS = ("request", "response", "input_steps", "output_steps", "usage")
BODY_FIELDS = frozenset((*BODY_KEYS, "input_text", "output_text"))
_BODY_COLUMNS = tuple(_JSON[k] for k in BODY_KEYS)
#: Columns a repacked row rewrites together.
PACKED_COLUMNS = ("body", *_BODY_COLUMNS, "input_text", "output_text", "thought_tokens", "cached_tokens")
#: Row key → its column, for the packed fields.
BODY_COLUMN = {k: _JSON.get(k, k) for k in BODY_FIELDS}
#: Prompts above this many input tokens are counted apart (the API's long-context rates).
LONG_CONTEXT_TOKENS = 200_000


def _usage_extra(usage: Any) -> tuple[int | None, int | None]:
    """(thought, cached) tokens of a usage object; (None, None) without usage."""
    if not isinstance(usage, wire.MAPPING):
        return None, None
    thought, cached = usage.get("total_thought_tokens"), usage.get("total_cached_tokens")
    return (thought if type(thought) is int else 0), (cached if type(cached) is int else 0)


def _encode(row: Mapping[str, Any], pack: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """A row dict as column values (JSON as orjson text, times in UTC), plus the JSON
    values that carry inline media and still need splitting out (column → value).

    A whole row (it has ``request`` and ``response``) without media is packed into
    ``body`` (``packing``), its JSON columns left NULL."""
    values: dict[str, Any] = {}
    media: dict[str, Any] = {}
    parsed: dict[str, Any] = {}
    for key, value in row.items():
        column = _JSON.get(key, key)
        if column not in _COLUMNS:
            continue
        if key in _JSON:
            if isinstance(value, (str, bytes)) and key in ("request", "response"):
                value = orjson.loads(value)
            parsed[key] = value
            raw = _dumps(value)
            if raw is not None and len(raw) >= wire.MEDIA_MIN_CHARS and wire.has_media(raw):
                media[column] = value
            value = raw
        elif isinstance(value, datetime):
            value = _utc(value)
        values[column] = value
    if "usage" in parsed:
        values["thought_tokens"], values["cached_tokens"] = _usage_extra(parsed["usage"])
    if pack and "request" in parsed and "response" in parsed and not any(c in media for c in _BODY_COLUMNS):
        g = parsed.get
        try:
            values["body"] = packing.pack(g("request"), g("response"), g("input_steps"), g("output_steps"), g("usage"),
                                          row.get("input_text"), row.get("output_text"), refuse_media=True)
        except packing.MediaFound:  # media references: the JSON columns, where removal finds them
            return values, media
        for c in _BODY_COLUMNS:
            values[c] = None
    return values, media


def _defaults(values: dict[str, Any]) -> None:
    if values.get("recorded_at") is None:
        values["recorded_at"] = datetime.now(timezone.utc)
    for flag in ("partial", "store", "background", "stream"):
        if values.get(flag) is None:
            values[flag] = flag == "store"
    if values.get("hop_index") is None:
        values["hop_index"] = 0


def _blank(value: Any) -> bool:
    return value is None or value is False or (isinstance(value, str) and value in ("", "[]", "{}", "null"))


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


@dataclass
class Row:
    """One stored interaction. JSON columns are parsed on first access."""

    id: str
    conversation_id: str
    parent_id: str | None
    previous_interaction_id: str | None
    link: str | None
    model: str | None
    agent: str | None
    status: str | None
    partial: bool
    store: bool
    background: bool
    stream: bool
    request_json: str | None
    response_json: str | None
    input_steps_json: str | None
    output_steps_json: str | None
    input_text: str | None
    output_text: str | None
    usage_json: str | None
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    created: datetime | None
    updated: datetime | None
    recorded_at: datetime | None
    latency_ms: float | None
    expires_at: datetime | None
    server_state: str | None
    labels_json: str | None
    error_json: str | None
    context_hash: str | None
    hop_index: int
    api_version: str | None
    replay_run_id: str | None
    source_id: str | None
    body: bytes | None = None
    thought_tokens: int | None = None
    cached_tokens: int | None = None
    depth: int = 0
    _media: Any = None
    _pack: Any = None
    _derived: Any = None

    def _part(self, i: int) -> Any:
        """Request, response (0, 1: read from ``body``) or input steps, output steps,
        usage (2-4: rebuilt from those on first use; an export never needs them)."""
        if self._pack is None:
            self._pack = packing.load(self.body, self.input_text, self.output_text)  # type: ignore[arg-type]
        if i < 2:
            return self._pack["r" if i else "q"]
        if self._derived is None:
            self._derived = packing.derived(self._pack)
        return self._derived[i - 2]

    def _json(self, raw: str | None) -> Any:
        if raw is None:
            return None
        value = orjson.loads(raw)
        if self._media is not None and "convostore-media:" in raw:
            value = wire.join_media(value, self._media)
        return value

    def _json_object(self, raw: str | None) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self._json(raw)  # a JSON object column, typed for callers
        return value

    @property
    def request(self) -> dict[str, Any]:
        if self.body is not None:
            return self._part(0) or {}
        return self._json(self.request_json) or {}

    @property
    def response(self) -> dict[str, Any] | None:
        if self.body is not None:
            return self._part(1)  # type: ignore[no-any-return]
        return self._json_object(self.response_json)

    @property
    def input_steps(self) -> list[dict[str, Any]]:
        if self.body is not None:
            return self._part(2) or []
        return self._json(self.input_steps_json) or []

    @property
    def output_steps(self) -> list[dict[str, Any]]:
        if self.body is not None:
            return self._part(3) or []
        return self._json(self.output_steps_json) or []

    @property
    def usage(self) -> dict[str, Any] | None:
        if self.body is not None:
            return self._part(4)  # type: ignore[no-any-return]
        return self._json_object(self.usage_json)

    def body_parts(self) -> dict[str, Any]:
        """The packed fields as a row dict has them (a merge or an update repacks them)."""
        return {"request": self.request, "response": self.response, "input_steps": self.input_steps,
                "output_steps": self.output_steps, "usage": self.usage, "input_text": self.input_text,
                "output_text": self.output_text}

    @property
    def labels(self) -> dict[str, Any] | None:
        return self._json_object(self.labels_json)

    @property
    def error(self) -> dict[str, Any] | None:
        return self._json_object(self.error_json)

    def to_json_dict(self) -> dict[str, Any]:
        """The shape the CLI's ``--json`` prints."""
        return {
            "id": self.id,
            "conversation_id": self.conversation_id,
            "parent_id": self.parent_id,
            "previous_interaction_id": self.previous_interaction_id,
            "link": self.link,
            "model": self.model,
            "agent": self.agent,
            "status": self.status,
            "partial": self.partial,
            "store": self.store,
            "background": self.background,
            "stream": self.stream,
            "input_text": self.input_text,
            "output_text": self.output_text,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "created": self.created,
            "updated": self.updated,
            "recorded_at": self.recorded_at,
            "latency_ms": self.latency_ms,
            "expires_at": self.expires_at,
            "server_state": self.server_state,
            "labels": self.labels,
            "error": self.error,
            "hop_index": self.hop_index,
            "api_version": self.api_version,
            "replay_run_id": self.replay_run_id,
            "source_id": self.source_id,
        }


_ROW_FIELDS = [f.name for f in fields(Row) if not f.name.startswith("_") and f.name != "depth"]
_SELECT_COLUMNS = [T.c[name] for name in T.c.keys()]
_TYPED = [column(c.name, c.type) for c in _SELECT_COLUMNS]
_LinkRow = namedtuple("_LinkRow", "id conversation_id context_hash")


def _sqlite_param(value: Any) -> Any:
    """A value as SQLAlchemy's SQLite dialect stores it (so both paths read back the same)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    return value


_ZERO = timedelta(0)
#: The column order _sqlite_params writes (checked against the table at import).
_PARAMS_ORDER = (
    "id", "conversation_id", "parent_id", "previous_interaction_id", "link", "model", "agent", "status",
    "partial", "store", "background", "stream", "request_json", "response_json", "input_steps", "output_steps",
    "input_text", "output_text", "usage_json", "input_tokens", "output_tokens", "total_tokens", "created",
    "updated", "recorded_at", "latency_ms", "expires_at", "server_state", "labels", "error", "context_hash",
    "hop_index", "api_version", "replay_run_id", "source_id", "body", "thought_tokens", "cached_tokens",
)
if _PARAMS_ORDER != _COLUMN_ORDER:  # pragma: no cover - a schema change must update _sqlite_params
    raise RuntimeError("_sqlite_params is out of step with the interaction table")


class _Media(Exception):
    """A JSON value carries inline media: the general path splits it out."""


def _sqlite_json(value: Any) -> str | None:
    if value is None:
        return None
    raw = orjson.dumps(value, default=str).decode()
    if len(raw) >= wire.MEDIA_MIN_CHARS and wire.has_media(raw):
        raise _Media
    return raw


def _sqlite_time(value: Any) -> Any:
    """A datetime as SQLAlchemy's SQLite dialect stores it (UTC, naive, microseconds)."""
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is not None and value.tzinfo is not timezone.utc and value.utcoffset() != _ZERO:
        value = value.astimezone(timezone.utc)
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (
        value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond
    )


def _sqlite_params(row: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """A row dict straight to the driver's parameter tuple, in table order: the values
    ``_encode`` + ``_defaults`` + ``_sqlite_param`` give, at a third of the cost.
    None when the general path must do it (inline media to split out, raw JSON text)."""
    if "request_json" in row or "response_json" in row or "usage_json" in row or "body" in row:
        return None
    g = row.get
    request, response = g("request"), g("response")
    if isinstance(request, (str, bytes)):
        request = orjson.loads(request)
    if isinstance(response, (str, bytes)):
        response = orjson.loads(response)
    recorded_at = g("recorded_at")
    partial, store, background, stream, hop = g("partial"), g("store"), g("background"), g("stream"), g("hop_index")
    usage, input_text, output_text = g("usage"), g("input_text"), g("output_text")
    thought, cached = _usage_extra(usage)
    try:
        if "request" in row and "response" in row:  # a whole exchange: packed, as _encode packs it
            body = _sqlite_body(request, response, g("input_steps"), g("output_steps"), usage, input_text, output_text)
            legacy: tuple[Any, ...] = (None, None, None, None, None)
        else:
            body = None
            legacy = (_sqlite_json(request), _sqlite_json(response), _sqlite_json(g("input_steps")),
                      _sqlite_json(g("output_steps")), _sqlite_json(usage))
        return (
            g("id"), g("conversation_id"), g("parent_id"), g("previous_interaction_id"), g("link"), g("model"),
            g("agent"), g("status"),
            False if partial is None else partial, True if store is None else store,
            False if background is None else background, False if stream is None else stream,
            *legacy[:4], input_text, output_text, legacy[4],
            g("input_tokens"), g("output_tokens"), g("total_tokens"), _sqlite_time(g("created")),
            _sqlite_time(g("updated")), _sqlite_time(datetime.now(timezone.utc) if recorded_at is None else recorded_at),
            g("latency_ms"), _sqlite_time(g("expires_at")), g("server_state"), _sqlite_json(g("labels")),
            _sqlite_json(g("error")), g("context_hash"), 0 if hop is None else hop, g("api_version"),
            g("replay_run_id"), g("source_id"), body, thought, cached,
        )
    except _Media:
        return None


def _sqlite_body(request: Any, response: Any, inputs: Any, outputs: Any, usage: Any, input_text: Any, output_text: Any) -> bytes:
    """``packing.pack``, refusing (``_Media``) when a part carries inline media: the general
    path splits it out and keeps the JSON columns."""
    try:
        return packing.pack(request, response, inputs, outputs, usage, input_text, output_text, refuse_media=True)
    except packing.MediaFound:
        raise _Media from None


@dataclass
class Turn:
    """One turn of a chain, as ``history`` needs it."""

    id: str
    parent_id: str | None
    model: str | None
    link: str | None
    input_steps: list[dict[str, Any]]
    output_steps: list[dict[str, Any]]
    request: dict[str, Any] | None = None


@dataclass
class Node:
    """One turn's place in its conversation's tree, without its payloads (``Store.tree_nodes``)."""

    id: str
    parent_id: str | None
    link: str | None
    model: str | None
    status: str | None
    server_state: str | None
    recorded_at: datetime | None
    input_text: str | None  # the first NODE_TEXT characters


@dataclass
class Run:
    id: str
    source_conversation_id: str | None
    source_head_id: str | None
    model: str | None
    agent: str | None
    mode: str
    settings: dict[str, Any]
    status: str
    created_at: datetime | None
    finished_at: datetime | None
    summary: dict[str, Any]
    heartbeat_at: datetime | None = None


_COLUMN_FOR_FIELD = {name: {"input_steps_json": "input_steps", "output_steps_json": "output_steps", "labels_json": "labels", "error_json": "error"}.get(name, name) for name in _ROW_FIELDS}
