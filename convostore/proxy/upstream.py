"""The proxy's one pooled upstream client, and what its failures look like to the app.

One ``httpx.AsyncClient`` per proxy: kept-alive connections, HTTP/2 when the upstream
offers it over TLS (``h2``), and explicit timeouts on every phase, so an upstream that
hangs or resets becomes a 504/502 JSON error for the app instead of a hang.
"""

from __future__ import annotations

import importlib.util
import logging
import re

import httpx
import orjson

#: Google's public Gemini API endpoint.
DEFAULT_UPSTREAM = "https://generativelanguage.googleapis.com"

#: Seconds per phase. ``read`` is the longest gap between bytes: a long thinking turn or
#: a quiet stream must not be cut, a dead upstream must be.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=600.0, write=60.0, pool=10.0)


def timeout_of(value: float | httpx.Timeout | None) -> httpx.Timeout:
    """``None`` → the defaults; a number → that many seconds for every phase."""
    if value is None:
        return DEFAULT_TIMEOUT
    if isinstance(value, httpx.Timeout):
        return value
    if not value > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {value!r}")
    return httpx.Timeout(float(value))


_QUERY_KEY = re.compile(r"([?&]key=)[^&\s\"']+")


class RedactQueryKeys(logging.Filter):
    """httpx logs each request's URL at INFO, ``?key=`` included: the key is cut out."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is logging's problem, not ours
            return True
        if "key=" in text:
            record.msg, record.args = _QUERY_KEY.sub(r"\1[redacted]", text), ()
        return True


def guard_logs() -> None:
    """Put ``RedactQueryKeys`` on the httpx loggers (once per process)."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactQueryKeys) for f in logger.filters):
            logger.addFilter(RedactQueryKeys())


def make_client(timeout: httpx.Timeout) -> httpx.AsyncClient:
    """The pooled client; HTTP/2 only if ``h2`` is installed (it is, with ``httpx[http2]``)."""
    guard_logs()
    http2 = importlib.util.find_spec("h2") is not None
    return httpx.AsyncClient(
        http2=http2,
        timeout=timeout,
        limits=httpx.Limits(max_connections=512, max_keepalive_connections=128, keepalive_expiry=30.0),
        follow_redirects=False,  # the app sees redirects as the upstream sent them
    )


def normalize_upstream(url: str) -> str:
    """``http(s)://host[:port][/prefix]`` without its trailing slash; anything else is refused."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"upstream must be an http:// or https:// URL, got {url!r}")
    return url.rstrip("/")


def failure(exc: httpx.HTTPError) -> tuple[int, str, str]:
    """``(HTTP status, Google error status, kind)`` for a request the upstream never answered."""
    if isinstance(exc, httpx.PoolTimeout):
        return 503, "UNAVAILABLE", "pool"
    if isinstance(exc, httpx.TimeoutException):
        return 504, "DEADLINE_EXCEEDED", "timeout"
    return 502, "UNAVAILABLE", "unreachable"


def error_body(status: int, google_status: str, message: str, *, interactions: bool = False) -> bytes:
    """An error in the shape the app's SDK reads: the Interactions API's (``code`` a
    lowercase word) on its paths, Google's (``code`` the HTTP status) elsewhere."""
    if interactions:
        return orjson.dumps({"error": {"code": google_status.lower(), "message": message}})
    return orjson.dumps({"error": {"code": status, "message": message, "status": google_status}})


_WHAT = {
    "timeout": "upstream timed out",
    "pool": "too many requests in flight to the upstream",
    "unreachable": "upstream connection failed",
}


def describe(exc: httpx.HTTPError) -> str:
    """One line about an upstream failure, for the app and the archive (never a credential:
    httpx messages name the host and the phase, not the request)."""
    text = str(exc).strip()
    what = _WHAT[failure(exc)[2]]
    return f"convostore proxy: {what} ({type(exc).__name__}" + (f": {text[:300]})" if text else ")")
