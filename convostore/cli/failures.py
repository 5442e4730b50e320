"""Any exception a command raises → one line a person can act on (`describe`).

The CLI's group catches everything here, so commands stay free of try/except. SDK
errors are recognised by duck typing (a status code on ``status_code`` or ``code``;
connection failures by class name through the MRO), because the two SDK generations
raise different classes from different HTTP stacks (httpx, httpx2).
"""

from __future__ import annotations

import os
from typing import Any

import click

KEY_HINT = "is the API key set and valid? GEMINI_API_KEY (or GOOGLE_API_KEY)"
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
MAX_MESSAGE = 400

_CONNECTION_CLASSES = frozenset({
    "APIConnectionError", "APITimeoutError", "ConnectError", "ConnectTimeout", "ReadTimeout", "WriteTimeout",
    "PoolTimeout", "TimeoutException", "NetworkError", "RemoteProtocolError", "ReadError", "WriteError",
    "TransportError", "ConnectionError", "ConnectionRefusedError", "ConnectionResetError", "TimeoutError",
})


def debug_requested(ctx: click.Context | None = None) -> bool:
    """--debug on the command line, or CONVOSTORE_DEBUG set to anything but 0/false/empty."""
    if ctx is not None and (ctx.find_root().obj or {}).get("debug"):
        return True
    return os.environ.get("CONVOSTORE_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """Whitespace collapsed, cut to ``limit`` characters: an error never floods the terminal."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _class_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _status(exc: BaseException) -> int | None:
    for attr in ("status_code", "code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


def _api_message(exc: BaseException) -> str:
    for attr in ("body", "details"):
        body = getattr(exc, attr, None)
        err = body.get("error", body) if isinstance(body, dict) else None
        if isinstance(err, dict) and isinstance(err.get("message"), str) and err["message"]:
            found: str = err["message"]
            return found
    message = getattr(exc, "message", None)
    return message if isinstance(message, str) and message else str(exc)


def _base_url(exc: BaseException) -> str:
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None)
    if url is not None:
        text = str(url)
        scheme, sep, rest = text.partition("://")
        return f"{scheme}{sep}{rest.split('/', 1)[0]}" if sep else text
    return os.environ.get("GOOGLE_GEMINI_BASE_URL") or DEFAULT_BASE_URL


def _is_sdk(exc: BaseException) -> bool:
    return any(cls.__module__.startswith(("google.", "httpx", "httpcore")) for cls in type(exc).__mro__)


def _api_error(exc: BaseException, status: int) -> str:
    message = one_line(_api_message(exc), 200)
    if status in (401, 403):
        return f"the API refused the credentials (HTTP {status}: {message}); {KEY_HINT}"
    if status == 404:
        return f"the API has no such interaction (HTTP 404: {message}); it may have expired on the server"
    if status == 429:
        return f"the API is rate limiting (HTTP 429: {message}); wait a little and try again"
    if status >= 500:
        return f"the API failed (HTTP {status}: {message}); try again later"
    return f"the API refused the request (HTTP {status}: {message})"


def _database_error(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    detail = one_line(str(orig).split("\n[SQL:", 1)[0], 200)
    names = _class_names(exc)
    if "ArgumentError" in names:
        return f"not a usable database URL: {detail}; give a file path, sqlite:///PATH or postgresql://user@host/db"
    if "OperationalError" in names and ("connect" in detail.lower() or "connection" in detail.lower()):
        return f"cannot connect to the database: {detail}; is the server running and the URL right (--db, CONVOSTORE_DB)?"
    return f"database error: {detail}"


def describe(exc: BaseException) -> str:
    """One line for any failure, with a hint where there is one."""
    from ..errors import ConvostoreError

    if isinstance(exc, ConvostoreError):
        return one_line(str(exc))
    names = _class_names(exc)
    status = _status(exc) if _is_sdk(exc) else None
    if status is not None and ("APIError" in names or "APIStatusError" in names or "HTTPStatusError" in names):
        return _api_error(exc, status)
    if names & _CONNECTION_CLASSES:
        reason = one_line(str(exc) or type(exc).__name__, 160)
        return f"cannot reach the API at {_base_url(exc)} ({reason}); is the network up, and GOOGLE_GEMINI_BASE_URL right if set?"
    if any(cls.__module__.startswith("sqlalchemy") for cls in type(exc).__mro__):
        return _database_error(exc)
    if "MissingGreenlet" in names or isinstance(exc, (KeyError, AttributeError, TypeError, AssertionError)):
        return f"unexpected {type(exc).__name__}: {one_line(str(exc), 200)} (a bug in convostore? run again with --debug for the traceback)"
    if isinstance(exc, ValueError) and _is_sdk(exc) and "api key" in str(exc).lower():
        return f"{one_line(str(exc), 200)}; {KEY_HINT}"
    if isinstance(exc, (ValueError, OSError)):
        return one_line(str(exc) or type(exc).__name__)
    return f"{type(exc).__name__}: {one_line(str(exc), 200)} (run again with --debug for the traceback)"


def parse_failure(value: Any, what: str, example: str) -> str:
    """The message for a value that does not parse (`not a duration: '2x' (use e.g. 2d)`)."""
    return f"not {what}: {one_line(repr(value), 80)} (use e.g. {example})"
