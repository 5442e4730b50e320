"""The recording proxy: archive and resume Interactions calls from apps in any language.

An app (JavaScript ``@google/genai``, Go, curl, ...) sets its Gemini API base URL to the
proxy; the proxy forwards every request to the upstream and records Interactions calls
into a ``Store`` with the Python recorder's own code, rebuilding expired chains as
``record()`` does. ``app.py`` forwards, ``capture.py`` records, ``headers.py`` sorts
headers, ``upstream.py`` holds the pooled client, ``server.py`` runs it.

    with running(store, upstream=sandbox.base_url) as proxy:   # port 0: a free port
        client = genai.Client(api_key="...", http_options={"base_url": proxy.url})
"""

from __future__ import annotations

from typing import Any

import httpx

from .app import ProxyApp
from .server import RunningProxy, running, serve
from .upstream import DEFAULT_UPSTREAM


def create_app(
    store: Any,
    *,
    upstream: str = DEFAULT_UPSTREAM,
    token: str | None = None,
    retention: Any = None,
    labels: dict[str, Any] | None = None,
    resume: bool = True,
    timeout: float | httpx.Timeout | None = None,
) -> ProxyApp:
    """The proxy as an ASGI 3 app, to serve with uvicorn (or ``serve``/``running``).

    ``token``: required on every request (``x-convostore-token`` or ``Authorization:
    Bearer``); ``retention``: expiry estimates (default: the store's); ``labels``: on
    every row; ``timeout``: seconds (or an ``httpx.Timeout``) for the upstream.
    Its lifespan shutdown flushes the archive's writer; the store stays open.
    """
    return ProxyApp(store, upstream=upstream, token=token, retention=retention, labels=labels, resume=resume, timeout=timeout)


__all__ = ["create_app", "serve", "running", "RunningProxy", "ProxyApp", "DEFAULT_UPSTREAM"]
