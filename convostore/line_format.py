"""The JSONL line format of ``export``/``import``, as one table-driven schema.

Every field of a line is checked here, before anything reaches a database, so SQLite
and PostgreSQL see the same values and give the same verdict: a value SQLite would
take and PostgreSQL refuse (a string in a number column, an integer past 32 bits, a
NUL character, an id too long for a B-tree index) is refused for both, with the
field's path (``meta.latency_ms``). Pure: no I/O.

The schema is a plain table (field → check) rather than a validation library: the
format is small, the checks are a few lines each, and import stays at its speed
(a library model per line cost more than the whole insert).

Open enumerations stay open where the API's own are: an interaction's ``status`` is
any lowercase token (the SDK itself accepts statuses it does not know), so an archive
recorded against a newer API still imports. Closed ones (``link``, ``server_state``,
``api_version``, a replay's ``mode``) are convostore's own.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

#: The newest line format this version writes and reads.
FORMAT_VERSION = 1
#: Links a row may carry (see ``Store.save``); ``judge``: a grade ``compare --judge`` asked for.
LINKS = frozenset({"root", "server", "rebuilt", "stateless", "continuation", "replay", "judge"})
#: What the server knows of an interaction.
SERVER_STATES = frozenset({"live", "expired", "deleted", "not_stored"})
API_VERSIONS = frozenset({"v1", "v1beta"})
REPLAY_MODES = frozenset({"forced", "free"})
#: Longest id or reference: PostgreSQL's B-tree index rows stop near 2,700 bytes.
MAX_ID = 512
#: Integer columns are 32-bit on PostgreSQL.
MAX_INT = 2**31 - 1

_TOKEN = re.compile(r"[a-z][a-z0-9_]{0,63}")


class FieldError(ValueError):
    """A field that breaks the schema: ``path`` names it (``meta.latency_ms``)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.reason = message
        super().__init__(f"{path}: {message}" if path else message)


def _shown(value: Any) -> str:
    """A value in an error message: its JSON type, and a short, one-line glimpse."""
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)
    if isinstance(value, (list, dict)) or value is None:
        return kind
    text = repr(value)
    text = text if len(text) <= 40 else text[:39] + "…"
    return f"{kind} {text}"


def _fail(path: str, wanted: str, value: Any) -> FieldError:
    return FieldError(path, f"expected {wanted}, got {_shown(value)}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --- the checks: small, composable -------------------------------------------------------
#
# Each check has a fast predicate (``ok``: exact JSON types, no path strings built) that
# every line runs, and an ``explain`` that only a failing value reaches: it names the
# field's path and what was wrong. A line costs a few microseconds to check.


class Check:
    """``ok(value)`` answers fast; calling the check raises ``FieldError`` unless ok."""

    __slots__ = ("ok", "explain", "inner")

    def __init__(self, ok: Callable[[Any], bool], explain: Callable[[Any, str], None], inner: Callable[[Any], bool] | None = None) -> None:
        self.ok = ok
        self.explain = explain
        #: A nullable check's own test for a value that is not None (``obj`` calls it directly).
        self.inner = inner

    def __call__(self, value: Any, path: str) -> None:
        if not self.ok(value):
            self.explain(value, path)
            raise FieldError(path, f"is not valid: {_shown(value)}")  # explain always names it first


def nullable(check: Check) -> Check:
    return Check(lambda v: v is None or check.ok(v), check.explain, check.ok)


def text(*, max_len: int | None = None, non_empty: bool = False) -> Check:
    def ok(value: Any) -> bool:
        return type(value) is str and (not non_empty or value != "") and (max_len is None or len(value) <= max_len)

    def explain(value: Any, path: str) -> None:
        if not isinstance(value, str):
            raise _fail(path, "a string", value)
        if non_empty and not value:
            raise FieldError(path, "must not be empty")
        raise FieldError(path, f"longer than {max_len} characters ({len(value)})")

    return Check(ok, explain)


#: An interaction, conversation or run id: a non-empty string a B-tree index can hold.
ident = text(max_len=MAX_ID, non_empty=True)


def _token_explain(value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise _fail(path, "a string", value)
    raise FieldError(path, f"expected a lowercase status word, got {_shown(value)}")


#: An open enumeration value: a lowercase word (``completed``, ``requires_action``).
token = Check(lambda v: type(v) is str and _TOKEN.fullmatch(v) is not None, _token_explain)


def one_of(choices: frozenset[str]) -> Check:
    def explain(value: Any, path: str) -> None:
        raise _fail(path, "one of " + ", ".join(sorted(choices)), value)

    return Check(lambda v: type(v) is str and v in choices, explain)


def _bool_explain(value: Any, path: str) -> None:
    raise _fail(path, "true or false", value)


boolean = Check(lambda v: type(v) is bool, _bool_explain)


def integer(*, low: int = 0, high: int = MAX_INT) -> Check:
    def explain(value: Any, path: str) -> None:
        if type(value) is not int:
            raise _fail(path, "an integer", value)
        raise FieldError(path, f"expected an integer from {low} to {high}, got {value}")

    return Check(lambda v: type(v) is int and low <= v <= high, explain)


def number(*, low: float = 0.0) -> Check:
    def ok(value: Any) -> bool:
        return (type(value) is float or type(value) is int) and math.isfinite(value) and value >= low

    def explain(value: Any, path: str) -> None:
        if type(value) not in (int, float):
            raise _fail(path, "a number", value)
        raise FieldError(path, f"expected a finite number ≥ {low:g}, got {value!r}")

    return Check(ok, explain)


def _iso_ok(value: Any) -> bool:
    if type(value) is not str:
        return False
    try:
        datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError:
        return False
    return True


def _iso_explain(value: Any, path: str) -> None:
    if not isinstance(value, str):
        raise _fail(path, "an ISO 8601 time", value)
    raise FieldError(path, f"expected an ISO 8601 time like 2026-11-24T12:00:00Z, got {_shown(value)}")


#: RFC 3339 / ISO 8601 text, as the API and ``export`` write times.
iso_time = Check(_iso_ok, _iso_explain)


def _objects_explain(value: Any, path: str) -> None:
    if not isinstance(value, list):
        raise _fail(path, "a list", value)
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise _fail(f"{path}[{i}]", "an object", item)


list_of_objects = Check(lambda v: type(v) is list and all(type(i) is dict for i in v), _objects_explain)


def _text_or_object_explain(value: Any, path: str) -> None:
    raise _fail(path, "a string or an object", value)


text_or_object = Check(lambda v: type(v) is str or type(v) is dict, _text_or_object_explain)


def obj(fields: Mapping[str, Check], *, open_: bool = False, required: tuple[str, ...] = ()) -> Check:
    """An object whose listed fields pass their checks; ``open_`` lets other keys through
    (payloads the API may grow), otherwise an unknown key is refused (a typo would be lost)."""
    get = fields.get
    # key -> (the test of a value that is not None, whether None passes): a null field
    # costs no call, which is most of a line's optional fields.
    tests = {key: (c.inner or c.ok, c.inner is not None or c.ok(None)) for key, c in fields.items()}
    test = tests.get

    def ok(value: Any) -> bool:
        if type(value) is not dict:
            return False
        for key in required:
            if value.get(key) is None:
                return False
        for key, item in value.items():
            entry = test(key)
            if entry is None:
                if not open_:
                    return False
            elif item is None:
                if not entry[1]:
                    return False
            elif not entry[0](item):
                return False
        return True

    def explain(value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise _fail(path, "an object", value)
        for key in required:
            if value.get(key) is None:
                raise FieldError(_join(path, key), "is required")
        for key, item in value.items():
            check = get(key)
            if check is None:
                if not open_:
                    raise FieldError(_join(path, key), f"unknown field (known: {', '.join(fields)})")
                continue
            check(item, _join(path, key))

    return Check(ok, explain)


# --- the format -----------------------------------------------------------------------

#: Any JSON object (labels, run settings): kept as it came.
ANY_OBJECT = obj({}, open_=True)

USAGE = obj(
    {
        "total_input_tokens": nullable(integer()),
        "input_tokens": nullable(integer()),
        "total_output_tokens": nullable(integer()),
        "output_tokens": nullable(integer()),
        "total_tokens": nullable(integer()),
    },
    open_=True,
)

#: The request as sent: the fields a row's columns are read from. Others pass as they are.
REQUEST = obj(
    {
        "model": nullable(text()),
        "agent": nullable(text()),
        "previous_interaction_id": nullable(ident),
        "store": nullable(boolean),
        "background": nullable(boolean),
        "stream": nullable(boolean),
        "labels": nullable(ANY_OBJECT),
    },
    open_=True,
)

#: The response as received (a create response or a GET body).
RESPONSE = obj(
    {
        "id": nullable(ident),
        "model": nullable(text()),
        "agent": nullable(text()),
        "status": nullable(token),
        "previous_interaction_id": nullable(ident),
        "store": nullable(boolean),
        "created": nullable(iso_time),
        "updated": nullable(iso_time),
        "usage": nullable(USAGE),
        "steps": nullable(list_of_objects),
        "outputs": nullable(list_of_objects),
    },
    open_=True,
)

#: What only the archive knows (``archive.META_FIELDS``): closed, every field typed.
META = obj(
    {
        "conversation_id": nullable(ident),
        "parent_id": nullable(ident),
        "link": nullable(one_of(LINKS)),
        "recorded_at": nullable(iso_time),
        "latency_ms": nullable(number()),
        "expires_at": nullable(iso_time),
        "server_state": nullable(one_of(SERVER_STATES)),
        "labels": nullable(ANY_OBJECT),
        "status": nullable(token),
        "partial": nullable(boolean),
        "hop_index": nullable(integer()),
        "stream": nullable(boolean),
        "replay_run_id": nullable(ident),
        "source_id": nullable(ident),
        "error": nullable(text_or_object),
        "context_hash": nullable(ident),
    }
)


def _version_explain(value: Any, path: str) -> None:
    if type(value) is not int:
        raise _fail(path, f"the format version {FORMAT_VERSION}", value)
    if value > FORMAT_VERSION:
        raise FieldError(path, f"format {value} was written by a newer convostore; this one reads formats up to {FORMAT_VERSION} (upgrade convostore)")
    raise FieldError(path, f"expected the format version {FORMAT_VERSION}, got {value}")


_version = Check(lambda v: type(v) is int and 1 <= v <= FORMAT_VERSION, _version_explain)


INTERACTION_LINE = obj(
    {
        "convostore": _version,
        "kind": one_of(frozenset({"interaction"})),
        "id": ident,
        "api_version": nullable(one_of(API_VERSIONS)),
        "request": nullable(REQUEST),
        "response": nullable(RESPONSE),
        "meta": nullable(META),
    }
)

RUN = obj(
    {
        "id": ident,
        "source_conversation_id": nullable(ident),
        "source_head_id": nullable(ident),
        "model": nullable(text()),
        "agent": nullable(text()),
        "mode": one_of(REPLAY_MODES),
        "settings": nullable(ANY_OBJECT),
        "status": token,
        "created_at": iso_time,
        "finished_at": nullable(iso_time),
        "summary": nullable(ANY_OBJECT),
        "heartbeat_at": nullable(iso_time),  # schema 0007
    },
    required=("id", "mode", "status", "created_at"),
)

RUN_LINE = obj(
    {"convostore": _version, "kind": one_of(frozenset({"replay_run"})), "run": RUN},
    required=("run",),
)


def _nul_path(value: Any, path: str) -> str | None:
    """The path of the first string (or key) holding a NUL character, if any."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                return path or "(a key)"
            found = _nul_path(item, _join(path, key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _nul_path(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def check_line(line: Any, *, raw: bytes | None = None) -> None:
    """Raise ``FieldError`` (with the field's path) unless ``line`` is a valid line.

    ``raw``, the line's bytes, lets the NUL check (PostgreSQL cannot store U+0000 in
    text) skip the walk over the line when no ``\\u0000`` escape appears in it.
    """
    if not isinstance(line, dict):
        raise FieldError("", f"a line must be a JSON object, got {_shown(line)}")
    if "convostore" in line:
        _version(line["convostore"], "convostore")
    if line.get("kind") == "replay_run":
        RUN_LINE(line, "")
    else:
        INTERACTION_LINE(line, "")
        if line.get("request") is None and line.get("response") is None:
            raise FieldError("request", "a line needs a 'request' or a 'response'")
    if raw is None or b"\\u0000" in raw:
        where = _nul_path(line, "")
        if where is not None:
            raise FieldError(where, "contains a NUL character (U+0000), which PostgreSQL cannot store")
