"""The HTTP seam: every Interactions exchange the SDK makes, as sent and as received.

``record()`` gets a client that is already built, so the seam is attached after the
fact, and kept small: the ``send`` method of the SDK's own httpx client objects is
shadowed by an instance attribute that calls the original and hands the exchange to the
recorder. Both SDK generations send through those objects (3.x: ``_api_client.
_httpx_client`` / ``_async_httpx_client``, ``httpx2``, used by ``_gaos``'s generated
client; 1.x: the same attributes, ``httpx``, used by the Stainless ``_interactions``
client), and both call ``send`` once per attempt, below their retry loops, so
retries, continuation hops and background polls are all seen. The per-event-loop async
client of 3.x forwards ``send`` to inner clients, which is why the seam is ``send`` and
not the outer client's ``_transport``.

Streaming responses are teed: the response's byte stream is replaced by a wrapper that
keeps a copy of each chunk as the caller reads it and reports once, when the stream is
exhausted, closed or garbage collected (then it may be partial).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("convostore")

_PATH = re.compile(r"/(?P<version>v[0-9][a-z0-9]*)/interactions(?:/(?P<id>[^/:?]+))?(?P<cancel>[/:]cancel)?/?$")
_MARK = "_convostore_recorder"


@dataclass
class Exchange:
    """One HTTP request/response pair on an ``/interactions`` path."""

    op: str  # create | get | delete | cancel
    api_version: str
    interaction_id: str | None
    request_body: bytes
    status: int
    response_body: bytes
    started: float
    finished: float
    stream: bool = False
    complete: bool = True  # False: a stream the caller stopped reading

    @property
    def latency_ms(self) -> float:
        return (self.finished - self.started) * 1000.0


def classify(method: str, path: str) -> tuple[str, str, str | None] | None:
    """``(op, api_version, id)`` for an Interactions API request, None for anything else."""
    m = _PATH.search(path)
    if m is None:
        return None
    iid, version = m.group("id"), m.group("version")
    if m.group("cancel"):
        return ("cancel", version, iid) if method == "POST" and iid else None
    if iid is None:
        return ("create", version, None) if method == "POST" else None
    if method == "GET":
        return ("get", version, iid)
    if method == "DELETE":
        return ("delete", version, iid)
    return None


def _request_body(request: Any) -> bytes:
    try:
        return bytes(request.content)
    except Exception:  # a streaming upload body: not an Interactions call in practice
        return b""


_TEE_CLASSES: dict[str, tuple[type, type]] = {}


def _tee_classes(response: Any) -> tuple[type, type]:
    """Byte-stream wrappers subclassing the response's own httpx flavour (httpx or httpx2)."""
    package = type(response).__module__.split(".", 1)[0]
    cached = _TEE_CLASSES.get(package)
    if cached is not None:
        return cached
    mod = sys.modules[package]

    class SyncTee(mod.SyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, done: Callable[[bytes, bool], None]) -> None:
            self._inner, self._done_cb = inner, done
            self._chunks: list[bytes] = []
            self._exhausted = False
            self._reported = False

        def __iter__(self):  # type: ignore[no-untyped-def]
            for chunk in self._inner:
                self._chunks.append(chunk)
                yield chunk
            self._exhausted = True

        def close(self) -> None:
            try:
                self._inner.close()
            finally:
                self._report()

        def _report(self) -> None:
            if not self._reported:
                self._reported = True
                self._done_cb(b"".join(self._chunks), self._exhausted)

        def __del__(self) -> None:
            try:
                self._report()
            except Exception:  # pragma: no cover - interpreter shutdown
                pass

    class AsyncTee(mod.AsyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, inner: Any, done: Callable[[bytes, bool], None]) -> None:
            self._inner, self._done_cb = inner, done
            self._chunks: list[bytes] = []
            self._exhausted = False
            self._reported = False

        async def __aiter__(self):  # type: ignore[no-untyped-def]
            async for chunk in self._inner:
                self._chunks.append(chunk)
                yield chunk
            self._exhausted = True

        async def aclose(self) -> None:
            try:
                await self._inner.aclose()
            finally:
                self._report()

        def _report(self) -> None:
            if not self._reported:
                self._reported = True
                self._done_cb(b"".join(self._chunks), self._exhausted)

        def __del__(self) -> None:
            try:
                self._report()
            except Exception:  # pragma: no cover
                pass

    _TEE_CLASSES[package] = (SyncTee, AsyncTee)
    return SyncTee, AsyncTee


def _content_if_read(response: Any) -> bytes | None:
    content = getattr(response, "_content", None)
    return content if isinstance(content, bytes) else None


def _observe(
    on_exchange: Callable[[Exchange, Any], None],
    ctx: Any,
    request: Any,
    response: Any,
    kind: tuple[str, str, str | None],
    body: bytes,
    started: float,
    is_async: bool,
) -> None:
    op, version, iid = kind
    content = _content_if_read(response)
    if content is not None:
        on_exchange(Exchange(op, version, iid, body, response.status_code, content, started, time.perf_counter()), ctx)
        return
    sync_tee, async_tee = _tee_classes(response)
    status = response.status_code

    def done(raw: bytes, exhausted: bool) -> None:
        try:
            on_exchange(
                Exchange(op, version, iid, body, status, raw, started, time.perf_counter(), stream=True, complete=exhausted),
                ctx,
            )
        except Exception:  # the recorder handles its own errors; this is the last guard
            log.warning("could not record a streamed exchange", exc_info=True)

    response.stream = (async_tee if is_async else sync_tee)(response.stream, done)


def attach(
    http_client: Any,
    on_exchange: Callable[[Exchange, Any], None],
    before: Callable[[bytes, tuple[str, str, str | None]], Any],
    *,
    is_async: bool,
) -> bool:
    """Shadow ``http_client.send`` so Interactions exchanges reach ``on_exchange``.

    ``before(body, (op, api_version, id))`` runs as each attempt is sent and returns the
    context (the SDK call it belongs to) handed back with the exchange, even when a stream
    is closed later from elsewhere. Attaching again replaces the callbacks (a client
    recorded twice records into the latest store); returns False when the seam was
    already in place.
    """
    if http_client is None:
        return False
    already = _MARK in vars(http_client)
    setattr(http_client, _MARK, (on_exchange, before))
    if already:
        return False
    original = http_client.send

    if is_async:

        async def send(request: Any, *args: Any, **kwargs: Any) -> Any:
            kind = classify(request.method, request.url.path)
            if kind is None:
                return await original(request, *args, **kwargs)
            observe, before_send = getattr(http_client, _MARK)
            body = _request_body(request)
            ctx = before_send(body, kind)
            started = time.perf_counter()
            response = await original(request, *args, **kwargs)
            try:
                _observe(observe, ctx, request, response, kind, body, started, True)
            except Exception:
                log.warning("could not observe an exchange", exc_info=True)
            return response

    else:

        def send(request: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            kind = classify(request.method, request.url.path)
            if kind is None:
                return original(request, *args, **kwargs)
            observe, before_send = getattr(http_client, _MARK)
            body = _request_body(request)
            ctx = before_send(body, kind)
            started = time.perf_counter()
            response = original(request, *args, **kwargs)
            try:
                _observe(observe, ctx, request, response, kind, body, started, False)
            except Exception:
                log.warning("could not observe an exchange", exc_info=True)
            return response

    http_client.send = send
    return True
