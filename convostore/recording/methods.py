"""``record()``: the transport seam plus thin wrappers around ``interactions`` methods.

The wrappers do three things only: open a ``Call`` context so the transport can attribute
each exchange to its SDK call, record a ``create`` that finally raises, and resume a
chain the server forgot (``convostore.resume``, imported lazily). Results are returned
unchanged; a stream is the SDK's own object, its iterator re-entering the call context so
continuation hops fetched while the caller reads are attributed too.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any, TypeVar

from . import sdk
from .context import CURRENT_CALL, Call, current_annotations
from .core import Recorder
from .transport import attach

if TYPE_CHECKING:
    from google.genai import Client

log = logging.getLogger("convostore")

_WRAPPED = ("create", "get", "delete", "cancel")
_ORIGINALS = "_convostore_originals"

#: The recorded client keeps its own type: ``record(genai.Client(...), ...)`` is a ``genai.Client``.
C = TypeVar("C", bound="Client")


def record(
    client: C,
    store: Any,
    *,
    strict: bool = False,
    resume: bool = True,
    retention: Any = None,
    labels: dict[str, Any] | list[str] | None = None,
) -> C:
    """Attach recording to a ``genai.Client`` (SDK 2.0+, or the retired 1.x) and return it.

    Every exchange of ``client.interactions`` and ``client.aio.interactions`` (``create``
    plain, streamed or in the background, ``get``, ``delete``, ``cancel``) is saved to
    ``store``. ``strict=True`` raises store failures instead of logging them;
    ``resume=False`` turns off rebuilding chains the server forgot; ``retention`` (``free``,
    ``paid`` or a duration) sets expiry estimates; ``labels`` go on every row.
    Calling it again on the same client replaces the previous recorder.

    Raises ``SdkCompatibilityError`` if the SDK release has moved the HTTP client that
    recording attaches to (rather than record nothing); warns once for a release outside
    the tested range (``convostore.recording.sdk.TESTED_RANGE``).
    """
    sync_http, async_http = sdk.http_clients(client)  # before anything is attached
    sdk.warn_if_untested(client)
    rec = Recorder(store, strict=strict, resume=resume, retention=retention, labels=labels)
    key = getattr(getattr(client, "_api_client", None), "api_key", None)
    if isinstance(key, str) and key:
        rec.secrets.add(key)
    attach(sync_http, rec.on_exchange, rec.before_send, is_async=False)
    attach(async_http, rec.on_exchange, rec.before_send, is_async=True)
    fmt = sdk.generation(client, client.interactions)
    _wrap_resource(client.interactions, rec, fmt, is_async=False)
    aio = getattr(client, "aio", None)
    if aio is not None:
        _wrap_resource(aio.interactions, rec, fmt, is_async=True)
    setattr(client, "_convostore_recorder", rec)
    return client


def _wrap_resource(resource: Any, rec: Recorder, fmt: str, *, is_async: bool) -> None:
    originals = resource.__dict__.get(_ORIGINALS)
    if originals is None:
        originals = {name: getattr(resource, name) for name in _WRAPPED if hasattr(resource, name)}
        resource.__dict__[_ORIGINALS] = originals
    for name, original in originals.items():
        if name == "create":
            wrapper = _async_create(original, rec, fmt) if is_async else _sync_create(original, rec, fmt)
        else:
            wrapper = _async_simple(original, rec, name) if is_async else _sync_simple(original, rec, name)
        resource.__dict__[name] = wrapper


# --- get / delete / cancel --------------------------------------------------------------


def _sync_simple(original: Any, rec: Recorder, op: str) -> Any:
    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = Call(op, current_annotations(), stream=bool(kwargs.get("stream")))
        token = CURRENT_CALL.set(call)
        try:
            result = original(*args, **kwargs)
        finally:
            CURRENT_CALL.reset(token)
        if rec.strict:
            rec.raise_failures(call)
        return result

    return wrapper


def _async_simple(original: Any, rec: Recorder, op: str) -> Any:
    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = Call(op, current_annotations(), stream=bool(kwargs.get("stream")))
        token = CURRENT_CALL.set(call)
        try:
            result = await original(*args, **kwargs)
        finally:
            CURRENT_CALL.reset(token)
        if rec.strict:
            rec.raise_failures(call)
        return result

    return wrapper


# --- create -----------------------------------------------------------------------------


def _sync_create(original: Any, rec: Recorder, fmt: str) -> Any:
    @functools.wraps(original)
    def create(*args: Any, **kwargs: Any) -> Any:
        call = Call("create", current_annotations(), stream=bool(kwargs.get("stream")))
        sent = kwargs
        rebuilt = False
        token = CURRENT_CALL.set(call)
        try:
            try:
                pre = rec.resumed(call, kwargs, fmt)
                if pre is not None:
                    sent, rebuilt = pre, True
                result = original(*args, **sent)
            except Exception as exc:
                again = None if rebuilt else rec.resumed(call, kwargs, fmt, exc)
                if again is None:
                    raise
                sent = again
                result = original(*args, **sent)
        except Exception as exc:
            rec.record_failure(call, exc, sent)
            if rec.strict:
                call.failures.clear()
            raise
        finally:
            CURRENT_CALL.reset(token)
        if call.stream and _is_stream(result):
            return _wrap_sync_stream(result, call, rec)
        if rec.strict:
            rec.raise_failures(call)
        return result

    return create


def _async_create(original: Any, rec: Recorder, fmt: str) -> Any:
    @functools.wraps(original)
    async def create(*args: Any, **kwargs: Any) -> Any:
        call = Call("create", current_annotations(), stream=bool(kwargs.get("stream")))
        sent = kwargs
        rebuilt = False
        token = CURRENT_CALL.set(call)
        try:
            try:
                pre = rec.resumed(call, kwargs, fmt)
                if pre is not None:
                    sent, rebuilt = pre, True
                result = await original(*args, **sent)
            except Exception as exc:
                again = None if rebuilt else rec.resumed(call, kwargs, fmt, exc)
                if again is None:
                    raise
                sent = again
                result = await original(*args, **sent)
        except Exception as exc:
            rec.record_failure(call, exc, sent)
            if rec.strict:
                call.failures.clear()
            raise
        finally:
            CURRENT_CALL.reset(token)
        if call.stream and _is_stream(result):
            return _wrap_async_stream(result, call, rec)
        if rec.strict:
            rec.raise_failures(call)
        return result

    return create


# --- streams ----------------------------------------------------------------------------


def _is_stream(obj: Any) -> bool:
    return hasattr(obj, "generator") or hasattr(obj, "_iterator")


def _iter_attr(stream: Any) -> str:
    return "generator" if hasattr(stream, "generator") else "_iterator"


def _wrap_sync_stream(stream: Any, call: Call, rec: Recorder) -> Any:
    """Re-enter the call context on every read; raise strict failures at the end."""
    attr = _iter_attr(stream)
    inner = getattr(stream, attr)
    call.counting = True

    def gen() -> Any:
        try:
            while True:
                token = CURRENT_CALL.set(call)
                try:
                    item = next(inner)
                except StopIteration:
                    break
                finally:
                    CURRENT_CALL.reset(token)
                call.events_read += 1
                yield item
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                token = CURRENT_CALL.set(call)
                try:
                    close()
                finally:
                    CURRENT_CALL.reset(token)
        if rec.strict:
            rec.raise_failures(call)

    setattr(stream, attr, gen())
    original_close = stream.close

    def close() -> None:
        token = CURRENT_CALL.set(call)
        try:
            original_close()
        finally:
            CURRENT_CALL.reset(token)
        if rec.strict:
            rec.raise_failures(call)

    stream.close = close
    return stream


def _wrap_async_stream(stream: Any, call: Call, rec: Recorder) -> Any:
    attr = _iter_attr(stream)
    inner = getattr(stream, attr)
    call.counting = True

    async def agen() -> Any:
        try:
            while True:
                token = CURRENT_CALL.set(call)
                try:
                    item = await inner.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    CURRENT_CALL.reset(token)
                call.events_read += 1
                yield item
        finally:
            aclose = getattr(inner, "aclose", None)
            if aclose is not None:
                await aclose()
        if rec.strict:
            rec.raise_failures(call)

    setattr(stream, attr, agen())
    original_close = stream.close

    async def close() -> None:
        token = CURRENT_CALL.set(call)
        try:
            await original_close()
        finally:
            CURRENT_CALL.reset(token)
        if rec.strict:
            rec.raise_failures(call)

    stream.close = close
    return stream
