"""Live updates for an open conversation page: server-sent events, with a polling fallback.

The app polls the conversation's summary row (one primary-key read, kept exact by the
store's triggers whoever records) every ``poll_interval`` seconds and sends an event
when it changes; the page then asks for the new turns as an HTML fragment. Streams end
when the client goes, and as soon as the server is stopping (``app.state.stopping``),
so Ctrl-C is never held up by an open page.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ..errors import NotFoundError
from ..store import Store
from .api import JSONResponse
from .templating import fragment
from .turns import turns_after

#: A comment line this often keeps proxies and browsers from timing the stream out.
KEEPALIVE_S = 15.0


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _state(store: Store, conversation_id: str) -> dict[str, Any]:
    summary = store.conversation(conversation_id)
    if summary is None:
        raise NotFoundError(f"no conversation {conversation_id!r}")
    return {"turns": summary.turns, "newest": summary.head_id, "status": summary.status,
            "updated_at": summary.updated_at.isoformat() if summary.updated_at else None}


def _conversation_id(store: Store, interaction_id: str) -> str:
    if store.conversation(interaction_id) is not None:
        return interaction_id
    return store.get(interaction_id).conversation_id


def state(request: Request) -> Response:
    """The polling fallback: the conversation's size and newest turn."""
    store = _store(request)
    return JSONResponse(_state(store, _conversation_id(store, request.path_params["id"])))


async def events(request: Request) -> Response:
    """``text/event-stream``: ``event: turn`` whenever the conversation's summary changes."""
    store = _store(request)
    cid = await run_in_threadpool(_conversation_id, store, request.path_params["id"])
    first = await run_in_threadpool(_state, store, cid)
    stopping: threading.Event = request.app.state.stopping
    interval: float = request.app.state.poll_interval

    async def stream() -> AsyncIterator[bytes]:
        last = first
        yield b"retry: 2000\nevent: hello\ndata: " + orjson.dumps(first) + b"\n\n"
        quiet = 0.0
        while not stopping.is_set():
            await asyncio.sleep(interval)
            if stopping.is_set() or await request.is_disconnected():
                break
            now = await run_in_threadpool(_state, store, cid)
            if now != last:
                last, quiet = now, 0.0
                yield b"event: turn\ndata: " + orjson.dumps(now) + b"\n\n"
            else:
                quiet += interval
                if quiet >= KEEPALIVE_S:
                    quiet = 0.0
                    yield b": keepalive\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})


def turns(request: Request) -> Response:
    """The turns recorded after ``since`` on its branch, as HTML to append to the page."""
    store = _store(request)
    since = request.query_params.get("since", "")
    cid = _conversation_id(store, request.path_params["id"])
    found = turns_after(store, cid, since)
    if found is None:
        raise NotFoundError(f"no turn {since[:70]!r} in conversation {cid}")
    leaf, views = found
    html = fragment("turns.html", turns=views)
    return JSONResponse({"leaf": leaf, "count": len(views), "html": html, **_state(store, cid)})


routes = [
    Route("/api/conversations/{id}/events", events),
    Route("/api/conversations/{id}/state", state),
    Route("/api/conversations/{id}/turns", turns),
]
