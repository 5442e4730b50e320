"""`convostore sandbox`: the offline Interactions API, served until interrupted."""

from __future__ import annotations

import click

from . import cli


@cli.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback unless told otherwise).")
@click.option("--port", default=0, type=int, show_default=True, help="Port (0 picks a free one).")
@click.option("--retention", type=float, help="Seconds the sandbox keeps an interaction (default: until expired on demand).")
@click.option("--latency", default=0.0, type=float, show_default=True, help="Milliseconds added to every API call.")
@click.option("--max-body", default=32 * 1024 * 1024, type=click.IntRange(0), show_default=True, help="Largest request body in bytes; a larger one is answered 413.")
def sandbox_cmd(host: str, port: int, retention: float | None, latency: float, max_body: int) -> None:
    """Serve the offline Interactions API until interrupted; prints its base URL.

    Point the SDK at it with GOOGLE_GEMINI_BASE_URL=<url> and any API key.
    """
    from ..sandbox import Sandbox

    sb = Sandbox(host=host, port=port, retention=retention, latency=latency, max_body=max_body)
    click.echo(sb.base_url)
    click.echo(f"export GOOGLE_GEMINI_BASE_URL={sb.base_url} GEMINI_API_KEY=sandbox", err=True)
    try:
        sb.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sb._server.server_close()
