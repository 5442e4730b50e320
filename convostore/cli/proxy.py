"""`convostore proxy`: the recording proxy, served until interrupted."""

from __future__ import annotations

from datetime import timedelta

import click

from . import cli, open_store
from .params import Duration


@cli.command("proxy")
@click.option("--upstream", default="https://generativelanguage.googleapis.com", show_default=True,
              help="The Gemini API to forward to (a sandbox URL for offline use).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback needs --token.")
@click.option("--port", default=8780, type=click.IntRange(0, 65535), show_default=True, help="Port (0 picks a free one).")
@click.option("--retention", type=Duration(), help="Expiry estimate for recorded turns: free, paid or a duration (default: paid).")
@click.option("--token", envvar="CONVOSTORE_PROXY_TOKEN", help="Secret every request must carry (x-convostore-token, or "
              "Authorization: Bearer); also $CONVOSTORE_PROXY_TOKEN.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True),
              help="Seconds for each upstream phase (connect, read gap, write); default 10 s connect, 600 s read.")
@click.pass_context
def proxy_cmd(ctx: click.Context, upstream: str, host: str, port: int, retention: timedelta | None,
              token: str | None, timeout: float | None) -> None:
    """Record every Interactions call an app makes, in any language: point its Gemini base
    URL (GOOGLE_GEMINI_BASE_URL, the JS SDK's httpOptions.baseUrl, curl) here.

    Forwards everything to --upstream unchanged; expired chains are rebuilt from the archive.
    Runs until Ctrl-C, then flushes the archive.
    """
    from ..proxy import serve
    from ..proxy.server import check_exposure
    from ..proxy.upstream import normalize_upstream

    try:
        check_exposure(host, token)
        normalize_upstream(upstream)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    store = open_store(ctx)

    def ready(url: str) -> None:
        click.echo(f"convostore proxy on {url} -> {upstream} (archive: {store.display_url})")
        click.echo(f"export GOOGLE_GEMINI_BASE_URL={url}", err=True)

    serve(store, upstream=upstream, host=host, port=port, token=token, retention=retention, timeout=timeout, on_ready=ready)
