"""Running the proxy: in the foreground (``convostore proxy``) or in a thread (tests, demo).

The listening socket is bound before uvicorn starts, so the URL printed (or handed to
``on_ready``) is already accepting connections, port 0 included. uvicorn's fast parts
(``httptools``, ``uvloop``) are used when installed, never required.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

import httpx
import uvicorn

from . import upstream as up
from .app import ProxyApp

log = logging.getLogger("convostore")

#: Seconds a stop waits for requests in flight (a held stream) before cutting them.
GRACEFUL_SECONDS = 5


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None) -> None:
    """Refuse a non-loopback bind without a token: the proxy spends the app's key."""
    if not is_loopback(host) and not token:
        raise ValueError(
            f"refusing to listen on {host} without a token: anyone who can reach it could use the "
            "API keys sent through it; pass --token (clients send x-convostore-token) or bind 127.0.0.1"
        )


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _config(app: ProxyApp) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        lifespan="on",
        log_level="warning",
        access_log=False,  # a URL may carry ?key=: never logged
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        server_header=False,
        date_header=False,
        backlog=2048,
    )


@dataclass
class RunningProxy:
    """A proxy serving in a background thread (see ``running``)."""

    url: str
    app: ProxyApp

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything answered so far is in the archive (see ``ProxyApp.flush``)."""
        return self.app.flush(timeout)


@contextmanager
def running(
    store: Any,
    *,
    upstream: str = up.DEFAULT_UPSTREAM,
    host: str = "127.0.0.1",
    port: int = 0,
    token: str | None = None,
    retention: Any = None,
    labels: dict[str, Any] | None = None,
    resume: bool = True,
    timeout: float | httpx.Timeout | None = None,
) -> Iterator[RunningProxy]:
    """A proxy in a background thread for the block (tests, the demo); ``port=0`` picks a
    free port (``.url`` has it). On exit: stopped, archive writer flushed; ``store`` stays open."""
    check_exposure(host, token)
    app = ProxyApp(store, upstream=upstream, token=token, retention=retention, labels=labels, resume=resume, timeout=timeout)
    sock = bind(host, port)
    server = uvicorn.Server(_config(app))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="convostore-proxy", daemon=True)
    thread.start()
    try:
        yield RunningProxy(url_of(sock), app)
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


class _Stopped(Exception):
    """Ctrl-C or SIGTERM, re-raised by uvicorn once it has shut down gracefully."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(signum)


def serve(
    store: Any,
    *,
    upstream: str = up.DEFAULT_UPSTREAM,
    host: str = "127.0.0.1",
    port: int = 8780,
    token: str | None = None,
    retention: Any = None,
    labels: dict[str, Any] | None = None,
    resume: bool = True,
    timeout: float | httpx.Timeout | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve in the foreground until Ctrl-C or SIGTERM; then stop, flush the archive's
    writer and return. ``on_ready(url)`` runs once the socket listens."""
    check_exposure(host, token)
    app = ProxyApp(store, upstream=upstream, token=token, retention=retention, labels=labels, resume=resume, timeout=timeout)
    sock = bind(host, port)
    server = uvicorn.Server(_config(app))
    main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        if on_ready is not None:
            on_ready(url_of(sock))
        server.run(sockets=[sock])
    except (_Stopped, KeyboardInterrupt):
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
