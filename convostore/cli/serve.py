"""`serve`: the archive in a web page (``convostore.serve.serve``)."""

from __future__ import annotations

import click

from . import cli


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on; anything but loopback needs --token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="Port to listen on (0: any free port).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the web browser.")
@click.option("--token", metavar="T", envvar="CONVOSTORE_SERVE_TOKEN", help="Require this token on every request (8+ characters of A-Z a-z 0-9 . _ ~ -); also $CONVOSTORE_SERVE_TOKEN.")
@click.pass_context
def serve_cmd(ctx: click.Context, host: str, port: int, open_browser: bool, token: str | None) -> None:
    """Browse the archive in a web page (read-only; Ctrl-C stops)."""
    from ..serve import serve

    serve(ctx.find_root().obj.get("db"), host=host, port=port, token=token, open_browser=open_browser)
