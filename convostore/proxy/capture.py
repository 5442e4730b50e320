"""Proxied Interactions exchanges → the Python recorder's rows, off the event loop.

The proxy does not build rows of its own: each proxied request is a recorder ``Call``
and each upstream answer an ``Exchange``, handed to the same ``Recorder`` that
``record()`` attaches to an SDK client, so rows, links, labels, failed attempts and the
resume decision (``Recorder.resumed`` → ``convostore.resume``) are one code path.

Everything that touches the store or parses a body runs on one worker thread, in the
order requests finished: a turn is handed to the store's background writer before the
next turn's resume decision reads it, and the event loop only forwards bytes.

A continuation hop arrives as its own HTTP request; the call it continues is found by
the ``continuation_token`` the previous hop answered with, so hops are numbered and
linked ``continuation`` as inside one SDK ``create``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..direct import DirectHTTPError
from ..recording.context import Call
from ..recording.core import Recorder
from ..recording.transport import Exchange

log = logging.getLogger("convostore")

#: Calls waiting for their next continuation hop; the oldest are forgotten past this.
MAX_PENDING_HOPS = 10_000


class UpstreamError(DirectHTTPError):
    """A non-2xx answer the upstream gave a proxied ``create`` (what a failed row records)."""


@dataclass
class Proxied:
    """One proxied Interactions request and what came back, as the event loop saw it."""

    call: Call
    op: str
    api_version: str
    interaction_id: str | None
    request_body: bytes
    started: float
    status: int = 0
    chunks: list[bytes] = field(default_factory=list)
    encoding: str = ""
    finished: float = 0.0
    stream: bool = False
    complete: bool = True
    error: BaseException | None = None
    secrets: set[str] = field(default_factory=set)


def decode(raw: bytes, encoding: str) -> bytes:
    """The body as sent before ``Content-Encoding`` (gzip or deflate); a cut-off stream
    decodes as far as it goes."""
    coding = encoding.strip().lower()
    if not coding or coding == "identity" or not raw:
        return raw
    if coding not in ("gzip", "deflate", "x-gzip"):
        return b""  # not decodable here: the row keeps what it can (no body)
    for wbits in (47, -15):  # gzip or zlib header, then raw deflate
        try:
            inflater = zlib.decompressobj(wbits)
            return inflater.decompress(raw)
        except zlib.error:
            continue
    return b""


def fmt_of(schema: str) -> str:
    """The resume format for a request's schema (``wire.request_schema``)."""
    return "turns" if schema == "v1beta" else "steps"


class Capture:
    """The recorder behind one proxy, and the single worker thread it runs on."""

    def __init__(
        self,
        store: Any,
        *,
        retention: Any = None,
        labels: Mapping[str, Any] | None = None,
        resume: bool = True,
    ) -> None:
        self.store = store
        self.recorder = Recorder(store, retention=retention, labels=dict(labels) if labels else None, resume=resume)
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="convostore-proxy-recorder")
        self._hops: OrderedDict[str, Call] = OrderedDict()

    def call(self, op: str, labels: dict[str, str] | None) -> Call:
        """The recorder's context for one proxied request (the app's labels on its rows)."""
        return Call(op, {"labels": labels} if labels else {})

    # --- the resume decision (awaited: it decides what is sent) --------------------------

    async def plan(self, call: Call, body: bytes, schema: str) -> bytes | None:
        """The body to send instead of ``body`` (rebuilt from the archive), or None."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.worker, self._resumed, call, body, schema, None)

    async def after_error(
        self, call: Call, body: bytes, schema: str, status: int, answer: bytes, encoding: str
    ) -> bytes | None:
        """After the upstream refused ``body``: a rebuilt body when it lost the chain, or None."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.worker, self._after_error, call, body, schema, status, answer, encoding)

    def _after_error(self, call: Call, body: bytes, schema: str, status: int, answer: bytes, encoding: str) -> bytes | None:
        return self._resumed(call, body, schema, UpstreamError(status, decode(answer, encoding), {}))

    def _resumed(self, call: Call, raw: bytes, schema: str, exc: BaseException | None) -> bytes | None:
        try:
            body = orjson.loads(raw)
            if not isinstance(body, dict):
                return None
            rebuilt = self.recorder.resumed(call, body, fmt_of(schema), exc)
        except Exception as error:  # noqa: BLE001 - a failed decision sends the request as it came
            log.warning("proxy: resume decision failed, sending as is: %s", error)
            return None
        return None if rebuilt is None else orjson.dumps(rebuilt)

    # --- recording (fire and forget) -------------------------------------------------------

    def record(self, item: Proxied) -> None:
        """Queue one finished exchange for the recorder; returns at once."""
        try:
            self.worker.submit(self._record, item)
        except RuntimeError:  # the worker was shut down: the proxy is stopping
            log.warning("proxy: stopping, an exchange was not recorded")

    def _record(self, item: Proxied) -> None:
        try:
            call = self._hop_call(item)
            if item.error is not None or (item.op == "create" and not 200 <= item.status < 300):
                if item.op == "create":
                    self._failed(call, item)
                return
            ex = Exchange(
                item.op,
                item.api_version,
                item.interaction_id,
                item.request_body,
                item.status,
                decode(b"".join(item.chunks), item.encoding),
                item.started,
                item.finished,
                stream=item.stream,
                complete=item.complete,
            )
            self.recorder.on_exchange(ex, (call, 0))
            token = call.continuation_token
            if token:
                call.continuation_token = None
                self._hops[token] = call
                while len(self._hops) > MAX_PENDING_HOPS:
                    self._hops.popitem(last=False)
        except Exception:  # noqa: BLE001 - the last guard: the proxy goes on
            log.warning("proxy: could not record an exchange", exc_info=True)

    def _hop_call(self, item: Proxied) -> Call:
        """The call a continuation hop belongs to (by its token), else the request's own."""
        if item.op != "create" or b"continuation_token" not in item.request_body:
            return item.call
        try:
            token = orjson.loads(item.request_body).get("continuation_token")
        except (orjson.JSONDecodeError, AttributeError):
            return item.call
        if not isinstance(token, str):
            return item.call
        return self._hops.pop(token, None) or item.call

    def _failed(self, call: Call, item: Proxied) -> None:
        """One failed row, as ``record()`` writes for a ``create`` that raised."""
        call.last_request = item.request_body
        call.last_api_version = item.api_version
        exc = item.error or UpstreamError(item.status, decode(b"".join(item.chunks), item.encoding), {})
        self.recorder.record_failure(call, exc, {}, secrets=item.secrets)

    # --- lifecycle ----------------------------------------------------------------------------

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every exchange finished so far is in the archive (bounded)."""
        deadline = time.monotonic() + timeout
        try:
            self.worker.submit(lambda: None).result(timeout)
        except (TimeoutError, RuntimeError):
            return False
        flush = getattr(self.store, "flush", None)
        return bool(flush(max(0.0, deadline - time.monotonic()))) if flush is not None else True

    def close(self, timeout: float = 5.0) -> bool:
        """Record what is queued, then wait for the store's writer (bounded); False if it
        did not finish in time (what is left is spooled by the store, not lost)."""
        self.worker.shutdown(wait=True)
        flush = getattr(self.store, "flush", None)
        return bool(flush(timeout)) if flush is not None else True
