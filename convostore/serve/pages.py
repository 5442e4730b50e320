"""The HTML pages: conversations, search, a conversation, runs, expiring, stats, media.

Each reads only what it shows through the store's fast paths (a keyset page of the
summary table, bounded search, one branch's chain), so a page costs the same on a
small archive and on a million interactions. Endpoints are sync: Starlette runs them
in its thread pool, where the Store's blocking reads belong.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from ..errors import NotFoundError
from ..store import Store
from . import charts, params
from .templating import page, page_text
from .turns import conversation_view

#: Seconds the stats page reuses its window's usage.
STATS_TTL = 30.0
#: Conversations per page of ``/``; search results per page.
PAGE = 50
SEARCH_RESULTS = 50
_MEDIA_INLINE = ("image/", "audio/", "video/")
#: Where the streamed comparison goes in run.html.
_BODY = "<!--convostore:comparison-->"


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _costs(request: Request, conversation_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per conversation: its models and cost (None when a model has no price), one grouped read."""
    from ..prices import usage_cost

    out: dict[str, dict[str, Any]] = {cid: {"models": [], "cost": 0.0} for cid in conversation_ids}
    for u in _store(request).usage(conversations=conversation_ids):
        entry = out.setdefault(u["conversation"], {"models": [], "cost": 0.0})
        entry["models"].append(u["model"] or "-")
        cost = usage_cost(request.app.state.prices, u)
        entry["cost"] = None if cost is None or entry["cost"] is None else entry["cost"] + cost
    for cid, entry in out.items():
        if not entry["models"]:
            entry["cost"] = None
    return out


def home(request: Request) -> Response:
    q = request.query_params
    filters = params.conversation_filters(q)
    result = _store(request).list_conversations(limit=PAGE, **filters)
    kept = {k: v for k, v in q.items() if k in ("model", "status", "server_state", "label", "since", "until") and v}
    next_url = "/?" + urlencode({**kept, "after": result.next}) if result.next else None
    return page(request, "conversations.html", items=result.items, costs=_costs(request, [c.id for c in result.items]),
                next_url=next_url, filters=kept, first_page=not filters["after"], now=datetime.now(timezone.utc))


def search(request: Request) -> Response:
    q = request.query_params
    text = q.get("q", "")
    order = params.choice(q, "order", ("relevance", "newest"))
    rows = _store(request).search(text, limit=SEARCH_RESULTS, order=order) if text.strip() else []
    return page(request, "search.html", q=text, order=order, rows=rows)


def conversation(request: Request) -> Response:
    view = conversation_view(_store(request), request.path_params["id"], params.text(request.query_params, "branch"))
    return page(request, "conversation.html", now=datetime.now(timezone.utc), **view)


def interaction(request: Request) -> Response:
    row = _store(request).get(request.path_params["id"])
    return RedirectResponse(f"/conversations/{row.conversation_id}?{urlencode({'branch': row.id})}#turn-{row.id}", status_code=302)


def runs(request: Request) -> Response:
    from ..replaying import list_runs, run_costs

    store = _store(request)
    return page(request, "runs.html", runs=list_runs(store), costs=run_costs(store, request.app.state.prices))


def run(request: Request) -> Response:
    """A run's comparison, streamed conversation by conversation as ``report.html_body``
    writes it (the report file's own renderer), so a run over thousands of conversations
    starts showing at once and never sits whole in memory."""
    from ..comparison import compare
    from ..replaying import get_run
    from ..report import html_body

    store = _store(request)
    found = get_run(store, request.path_params["id"])  # NotFoundError before anything is sent
    comparison = compare(store, found.id, prices=request.app.state.prices)
    head, _, foot = page_text(request, "run.html", run=found, body=Markup(_BODY)).partition(_BODY)

    def chunks() -> Iterator[str]:
        yield head
        yield from html_body(comparison)
        yield foot

    return StreamingResponse(chunks(), media_type="text/html; charset=utf-8", headers={"cache-control": "no-store"})


def expiring(request: Request) -> Response:
    from ..resume import expiring as soon

    within = params.duration(request.query_params, "within", "2d")
    items = []
    for item in soon(_store(request), within):
        items.append(item)
        if len(items) >= 500:
            break
    return page(request, "expiring.html", items=items, within=request.query_params.get("within") or "2d",
                now=datetime.now(timezone.utc))


def stats(request: Request) -> Response:
    """Counters (the summary tables: cheap at any size) and the window's tokens and cost per
    model per day (one read of the window through the ``recorded_at`` index, kept STATS_TTL
    seconds: a dashboard, not a ledger)."""
    from ..prices import cost_summary

    days = params.integer(request.query_params, "days", 30, 1, 366)
    store = _store(request)
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    since = today - timedelta(days=days - 1)
    cache: dict[int, tuple[float, list[dict[str, Any]]]] = request.app.state.stats_cache
    hit = cache.get(days)
    if hit is None or time.monotonic() - hit[0] > STATS_TTL:
        hit = (time.monotonic(), store.usage(by_day=True, since=since))
        cache[days] = hit
    daily = hit[1]
    per_model: dict[str, dict[str, Any]] = {}
    for u in daily:
        m = per_model.setdefault(str(u.get("model")), {"model": u.get("model"), "calls": 0, "input": 0, "output": 0,
                                                       "thought": 0, "cached": 0, "total": 0, "max_input": 0})
        for key in ("calls", "input", "output", "thought", "cached", "total"):
            m[key] += u[key]
        m["max_input"] = max(m["max_input"], u["max_input"])
    window = cost_summary(request.app.state.prices, list(per_model.values()))
    chart = charts.daily(daily, request.app.state.prices, since, days)
    return page(request, "stats.html", stats=store.stats(), window=window, chart=chart, days=days)


def media(request: Request) -> Response:
    digest = request.path_params["sha256"]
    found = _store(request).media(digest) if len(digest) == 64 else None
    if found is None:
        raise NotFoundError(f"no media {digest[:70]!r} in this archive")
    mime, data = found
    mime = (mime or "application/octet-stream").strip().lower()
    headers = {"cache-control": "private, max-age=31536000, immutable"}
    if mime.startswith(_MEDIA_INLINE) and "svg" not in mime and all(c.isalnum() or c in "/.+-" for c in mime):
        return Response(data, media_type=mime, headers=headers)
    # Anything else (HTML, SVG, PDF, unknown) is never shown in the app's origin: a download.
    headers["content-disposition"] = f'attachment; filename="{digest[:16]}.bin"'
    return Response(data, media_type="application/octet-stream", headers=headers)


routes = [
    Route("/", home),
    Route("/search", search),
    Route("/conversations/{id}", conversation),
    Route("/interactions/{id}", interaction),
    Route("/runs", runs),
    Route("/runs/{id}", run),
    Route("/expiring", expiring),
    Route("/stats", stats),
    Route("/media/{sha256}", media),
]
