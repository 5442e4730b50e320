"""The recording proxy as a plain ASGI 3 app: forward everything, tee Interactions calls.

Per request the event loop does little: sort the headers, forward bytes both ways as
they come (``send(stream=True)`` and ``aiter_raw``: no whole-body buffering, no
re-compression), and keep a copy of an Interactions call's bodies, which the capture
worker turns into rows after the app has its answer. Only a ``create`` that names a
``previous_interaction_id`` waits for the worker first: the resume decision needs the
archive.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import httpx

from .. import wire
from ..recording.transport import classify
from . import headers as hdr
from . import upstream as up
from .capture import Capture, Proxied

log = logging.getLogger("convostore")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Answers worth a second try with the chain rebuilt: the upstream's "lost chain" errors.
_LOST_CHAIN_STATUSES = frozenset({400, 404})


class ProxyApp:
    """See the module docstring; build it with ``convostore.proxy.create_app``."""

    def __init__(
        self,
        store: Any,
        *,
        upstream: str = up.DEFAULT_UPSTREAM,
        token: str | None = None,
        retention: Any = None,
        labels: dict[str, Any] | None = None,
        resume: bool = True,
        timeout: float | httpx.Timeout | None = None,
    ) -> None:
        self.upstream = up.normalize_upstream(upstream)
        self.token = token or None
        self.timeout = up.timeout_of(timeout)
        self.capture = Capture(store, retention=retention, labels=labels, resume=resume)
        self.resume = resume
        self._client: httpx.AsyncClient | None = None
        self._closed = False
        self._inflight = 0  # Interactions requests being answered (``flush`` waits for them)
        self._idle = threading.Condition()

    # --- ASGI ---------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.client()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def client(self) -> httpx.AsyncClient:
        """The pooled upstream client (made on first use, on the serving loop)."""
        if self._client is None:
            self._client = up.make_client(self.timeout)
        return self._client

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until every Interactions request in flight is answered and recorded in the
        archive (tests read it right after a call); False if ``timeout`` passed first.
        Call it off the serving loop."""
        deadline = time.monotonic() + timeout
        with self._idle:
            if not self._idle.wait_for(lambda: self._inflight == 0, timeout):
                return False
        return self.capture.flush(max(0.0, deadline - time.monotonic()))

    async def aclose(self) -> None:
        """Close the upstream client, record what is queued and flush the archive's writer."""
        if self._closed:
            return
        self._closed = True
        if self._client is not None:
            await self._client.aclose()
        await asyncio.get_running_loop().run_in_executor(None, self.capture.close)

    # --- one request ----------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            incoming = hdr.sort_request(scope["headers"], self.token)
        except hdr.HeaderError as exc:
            status, google = (401, "UNAUTHENTICATED") if exc.kind == "token" else (400, "INVALID_ARGUMENT")
            await _error(send, status, google, exc.kind, str(exc), interactions="/interactions" in scope["path"])
            return
        method: str = scope["method"]
        query: bytes = scope.get("query_string") or b""
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
        url = self.upstream + raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        kind = classify(method, scope["path"]) if b"/interactions" in raw_path else None
        if kind is None:
            await self._pass_through(method, url, incoming, receive, send)
            return
        incoming.secrets |= hdr.query_secrets(query)
        with self._idle:
            self._inflight += 1
        try:
            await self._interactions(method, url, kind, incoming, receive, send)
        finally:
            with self._idle:
                self._inflight -= 1
                if not self._inflight:
                    self._idle.notify_all()

    async def _pass_through(self, method: str, url: str, incoming: hdr.Incoming, receive: Receive, send: Send) -> None:
        """Anything but an Interactions call: streamed both ways, untouched, unrecorded."""
        content = _body_stream(receive) if incoming.has_body else None
        request = self.client().build_request(method, url, headers=incoming.forward, content=content)
        try:
            response = await self.client().send(request, stream=True)
        except httpx.HTTPError as exc:
            await _upstream_error(send, exc)
            return
        try:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": hdr.response_headers(response.headers.raw)})
            try:
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except httpx.HTTPError as exc:
                log.warning("proxy: upstream failed mid-response (%s): %s", url.split("?", 1)[0], type(exc).__name__)
                return  # the client's connection is closed: a cut body, never a hang
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()

    async def _interactions(
        self, method: str, url: str, kind: tuple[str, str, str | None], incoming: hdr.Incoming, receive: Receive, send: Send
    ) -> None:
        op, version, iid = kind
        body = await _read_body(receive)
        forward = [(n, v) for n, v in incoming.forward if n not in (b"content-length", b"accept-encoding")]
        forward.append((b"accept-encoding", hdr.decodable_encoding(incoming.accept_encoding)))
        call = self.capture.call(op, incoming.labels)
        item = Proxied(call, op, version, iid, body, time.perf_counter(), secrets=incoming.secrets)
        chained = (
            op == "create"
            and self.resume
            and b"previous_interaction_id" in body
            and b"continuation_token" not in body
        )
        schema = wire.request_schema(version, incoming.api_revision, incoming.api_client) if chained else version
        rebuilt = False
        if chained:
            new = await self.capture.plan(call, body, schema)
            if new is not None:
                body, rebuilt = new, True
        client = self.client()
        content = body if body or method == "POST" else None
        prefetched: bytes | None = None  # an error body read for the resume decision
        try:
            response = await client.send(client.build_request(method, url, headers=forward, content=content), stream=True)
            if chained and not rebuilt and response.status_code in _LOST_CHAIN_STATUSES:
                prefetched = b"".join([chunk async for chunk in response.aiter_raw()])
                encoding = response.headers.get("content-encoding", "")
                new = await self.capture.after_error(call, body, schema, response.status_code, prefetched, encoding)
                if new is not None:
                    await response.aclose()
                    body, rebuilt, prefetched = new, True, None
                    response = await client.send(client.build_request(method, url, headers=forward, content=body), stream=True)
        except httpx.HTTPError as exc:
            item.request_body, item.error, item.finished = body, exc, time.perf_counter()
            self.capture.record(item)
            await _upstream_error(send, exc, interactions=True)
            return
        item.request_body = body
        item.status = response.status_code
        item.encoding = response.headers.get("content-encoding", "")
        item.stream = response.headers.get("content-type", "").startswith("text/event-stream")
        recorded = False
        try:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": hdr.response_headers(response.headers.raw)})
            if prefetched is not None:
                item.chunks.append(prefetched)
                await send({"type": "http.response.body", "body": prefetched, "more_body": True})
            elif item.stream:
                await _forward_watching(response, item, receive, send)
            else:
                await _forward(response, item, send)
            item.finished = time.perf_counter()
            recorded = True
            self.capture.record(item)  # queued before the app has the end of its answer
            if item.complete:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if not recorded:  # cut short (the server stopping): what passed through still counts
                item.complete, item.finished = False, time.perf_counter()
                self.capture.record(item)
            await response.aclose()


async def _forward(response: httpx.Response, item: Proxied, send: Send) -> None:
    """Forward a body chunk by chunk, keeping a copy; an upstream failure leaves it cut."""
    try:
        async for chunk in response.aiter_raw():
            item.chunks.append(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except httpx.HTTPError as exc:
        item.complete = False
        log.warning("proxy: upstream failed mid-response: %s", type(exc).__name__)


async def _forward_watching(response: httpx.Response, item: Proxied, receive: Receive, send: Send) -> None:
    """Forward a server-sent event stream chunk by chunk; stop early, keeping what was
    read, if the app disconnects or the upstream fails (``item.complete`` then False)."""

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    pumping = asyncio.ensure_future(_forward(response, item, send))
    watching = asyncio.ensure_future(watch())
    try:
        await asyncio.wait((pumping, watching), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not pumping.done():
            item.complete = False  # the app went away mid-stream
        for task in (pumping, watching):
            task.cancel()
        await asyncio.gather(pumping, watching, return_exceptions=True)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _body_stream(receive: Receive) -> AsyncIterator[bytes]:
    """The app's request body as it arrives (an upload is never held whole)."""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body"):
            return


async def _error(send: Send, status: int, google_status: str, kind: str, message: str, *, interactions: bool = False) -> None:
    body = up.error_body(status, google_status, message, interactions=interactions)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"x-convostore-proxy-error", kind.encode()),
    ]})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _upstream_error(send: Send, exc: httpx.HTTPError, *, interactions: bool = False) -> None:
    status, google, kind = up.failure(exc)
    log.warning("proxy: %s", up.describe(exc))
    await _error(send, status, google, kind, up.describe(exc), interactions=interactions)
