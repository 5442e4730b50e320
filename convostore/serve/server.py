"""Running the app: open the archive for reading, bind, print the URL, stop on Ctrl-C."""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import threading
import webbrowser
from types import FrameType
from typing import TextIO

import uvicorn

from ..errors import ConvostoreError, StoreError
from ..store import Store
from .security import is_loopback

log = logging.getLogger("convostore")

#: What a token may be made of: it travels in a URL and a cookie as it is.
TOKEN = re.compile(r"[A-Za-z0-9._~-]{8,256}")
#: Connections waiting to be accepted (uvicorn's default).
BACKLOG = 2048


def open_readonly(db: str | os.PathLike[str] | None) -> Store:
    """The archive at ``db`` opened for reading: nothing migrated, no spooled writes replayed.

    A missing file is an error (serving never creates an archive); so is a schema older
    than this convostore's (``convostore db upgrade`` brings it up) or newer (upgrade
    convostore).
    """
    from ..store import engine as _engine

    _engine.require_archive(db)
    store = Store(db, migrate=False, replay=False)
    try:
        revision = _engine.current_revision(store.engine)
    except Exception:
        store.close()
        raise
    if revision != _engine.SCHEMA_HEAD:
        store.close()
        if revision is None:
            raise StoreError(f"{store.display_url} is not a convostore archive (no schema): `convostore db upgrade` makes it one")
        if revision < _engine.SCHEMA_HEAD:
            raise StoreError(f"the archive {store.display_url} is at schema {revision}, this convostore reads {_engine.SCHEMA_HEAD}: "
                             "run `convostore db upgrade` first (serve never writes)")
        raise StoreError(f"the archive {store.display_url} is at schema {revision}, newer than this convostore "
                         f"({_engine.SCHEMA_HEAD}): upgrade convostore")
    return store


def check_binding(host: str, token: str | None) -> None:
    """Refuse a non-loopback address without a token, and a token that cannot travel in a URL."""
    if token is not None and not TOKEN.fullmatch(token):
        raise ConvostoreError("a --token is 8 to 256 characters of A-Z a-z 0-9 . _ ~ -")
    if not is_loopback(host) and token is None:
        raise ConvostoreError(f"--host {host} makes the archive reachable from other machines: give --token T as well")


def url_for(host: str, port: int, token: str | None) -> str:
    shown = f"[{host}]" if ":" in host else ("127.0.0.1" if host in ("0.0.0.0", "") else host)
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def serve(db: str | os.PathLike[str] | None = None, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
          open_browser: bool = False, *, out: TextIO | None = None, poll_interval: float = 0.5) -> None:
    """Serve the archive at ``db`` until Ctrl-C (or SIGTERM); prints the URL first.

    Returns normally on Ctrl-C. Never writes to the archive.
    """
    from .app import create_app

    check_binding(host, token)
    store = open_readonly(db)
    try:
        app = create_app(store, token=token, poll_interval=poll_interval)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(BACKLOG)  # connections wait in the backlog from the moment the URL is printed
        except OSError as exc:
            sock.close()
            raise ConvostoreError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        bound = sock.getsockname()[1]
        url = url_for(host, bound, token)
        config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=3, lifespan="off",
                                backlog=BACKLOG)
        server = _Server(config, app.state.stopping)
        print(f"convostore serve: {url}  (Ctrl-C stops)", file=out or sys.stdout, flush=True)
        if open_browser:
            webbrowser.open(url)
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn re-raises the signal it handled once it has stopped
            pass
        finally:
            sock.close()
    finally:
        store.close()


class _Server(uvicorn.Server):
    """uvicorn's Server, also telling the app it is stopping (ending its event streams)."""

    def __init__(self, config: uvicorn.Config, stopping: threading.Event) -> None:
        super().__init__(config)
        self.stopping = stopping

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.stopping.set()
        super().handle_exit(sig, frame)
