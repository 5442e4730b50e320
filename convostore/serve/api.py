"""``/api``: the CLI's ``--json`` over HTTP. Every route returns what ``convostore.views``
builds for the matching command (a listing the CLI prints as JSON lines is one array
here). Endpoints are sync: Starlette runs them in its thread pool, where the Store's
blocking reads belong."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import views
from ..store import Store
from . import params


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return views.dumps(content)


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def interaction(request: Request) -> Response:
    return JSONResponse(views.interaction(_store(request), request.path_params["id"]))


def interactions(request: Request) -> Response:
    q = request.query_params
    items = views.interactions(
        _store(request), limit=params.integer(q, "limit", 50, 1, 1000), conversation=params.text(q, "conversation"),
        model=params.text(q, "model"), status=params.text(q, "status"), since=params.date(q, "since"),
    )
    return JSONResponse(list(items))


def conversations(request: Request) -> Response:
    q = request.query_params
    return JSONResponse(views.conversations(_store(request), limit=params.integer(q, "limit", 50, 1, 1000),
                                            replays=q.get("replays") in ("1", "true"), **params.conversation_filters(q)))


def chain(request: Request) -> Response:
    return JSONResponse(views.chain(_store(request), request.path_params["id"]))


def tree(request: Request) -> Response:
    return JSONResponse(views.tree(_store(request), request.path_params["id"]))


def history(request: Request) -> Response:
    q = request.query_params
    return JSONResponse(views.history(_store(request), request.path_params["id"], model=params.text(q, "model"),
                                      format=params.choice(q, "format", ("steps", "turns"))))


def search(request: Request) -> Response:
    q = request.query_params
    return JSONResponse(views.search(_store(request), q.get("q", ""), limit=params.integer(q, "limit", 20, 1, 1000),
                                     order=params.choice(q, "order", ("relevance", "newest"))))


def runs(request: Request) -> Response:
    return JSONResponse(views.runs(_store(request), request.app.state.prices))


def run(request: Request) -> Response:
    from ..comparison import compare
    from ..replaying import get_run

    run_id = get_run(_store(request), request.path_params["id"]).id  # NotFoundError: 404
    comparison = compare(_store(request), run_id, prices=request.app.state.prices)
    return Response(comparison.to_json(), media_type="application/json")


def stats(request: Request) -> Response:
    return JSONResponse(views.stats(_store(request), request.app.state.prices))


def expiring(request: Request) -> Response:
    within = params.duration(request.query_params, "within", "2d")
    return JSONResponse(list(views.expiring(_store(request), within)))


routes = [
    Route("/api/interactions/{id}", interaction),
    Route("/api/list", interactions),
    Route("/api/conversations", conversations),
    Route("/api/chain/{id}", chain),
    Route("/api/tree/{id}", tree),
    Route("/api/history/{id}", history),
    Route("/api/search", search),
    Route("/api/runs", runs),
    Route("/api/runs/{id}", run),
    Route("/api/stats", stats),
    Route("/api/expiring", expiring),
]
