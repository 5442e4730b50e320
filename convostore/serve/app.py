"""The app factory: the routes, the guard, the error pages, one Store per app."""

from __future__ import annotations

import threading
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import ConvostoreError, NotFoundError
from ..prices import PriceTable, load_prices
from ..store import Store
from . import api, live, pages
from .api import JSONResponse
from .security import Guard
from .templating import page

STATIC = Path(__file__).with_name("static")


def _report_css(request: Request) -> Response:
    from ..report import CSS

    return Response(CSS, media_type="text/css", headers={"cache-control": "no-cache"})


def _error(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    return page(request, "error.html", status=status, status_code=status, message=message)


async def _convostore_error(request: Request, exc: Exception) -> Response:
    status = 404 if isinstance(exc, NotFoundError) else 400
    return _error(request, status, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "no such page" if exc.status_code == 404 else str(exc.detail)
    return _error(request, exc.status_code, message)


def create_app(store: Store, *, token: str | None = None, poll_interval: float = 0.5,
               prices: PriceTable | None = None) -> Starlette:
    """The web app over ``store`` (which the caller opens and closes).

    ``token``: required on every request when set (see ``security.Guard``).
    ``poll_interval``: seconds between live-update checks of an open conversation.
    ``prices``: the price table for costs (default: shipped, over ``$CONVOSTORE_PRICES``).
    ``app.state.stopping`` (a ``threading.Event``): set it to end open event streams.
    """
    app = Starlette(
        routes=[
            *pages.routes,
            *live.routes,
            *api.routes,
            Route("/static/report.css", _report_css),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(Guard, token=token)],
        exception_handlers={ConvostoreError: _convostore_error, HTTPException: _http_error},
    )
    app.state.store = store
    app.state.poll_interval = poll_interval
    app.state.prices = prices or load_prices()
    app.state.stopping = threading.Event()
    app.state.stats_cache = {}
    return app
