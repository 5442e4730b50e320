"""``convostore serve``: the archive in a web page, on Starlette and uvicorn.

``create_app(store, token=None)`` builds the app over an open Store (tests and
embedding); ``serve(db, host, port, token, open_browser)`` opens the archive read-only
and runs it until Ctrl-C. Modules: ``app`` (factory, errors), ``security`` (token, Host
check, headers), ``pages`` (HTML), ``api`` (the CLI's ``--json`` over HTTP), ``live``
(events for an open conversation), ``turns`` (a conversation's tree and steps for the
page), ``rich_text`` (safe Markdown), ``charts`` (SVG), ``templating``, ``params``,
``server`` (open, bind, run).
"""

from __future__ import annotations

from .app import create_app
from .server import open_readonly, serve

__all__ = ["create_app", "open_readonly", "serve"]
