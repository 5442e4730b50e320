"""`convostore demo`: the offline tour."""

from __future__ import annotations

import os
import tempfile

import click

from . import cli


@cli.command()
@click.option("--proxy", "through_proxy", is_flag=True,
              help="Show convostore proxy instead: a curl conversation that survives the server forgetting it.")
@click.pass_context
def demo(ctx: click.Context, through_proxy: bool) -> None:
    """Record, expire, resume and replay a conversation against a local sandbox, offline.

    Uses --db if given, else a new SQLite file in a temporary directory (printed),
    so your own archive is untouched. With --proxy: the same story told through
    `convostore proxy`, with curl as the app.
    """
    from ..demo import run_demo, run_proxy_demo
    from ..store import Store

    db = ctx.find_root().obj.get("db")
    if not db:
        db = os.path.join(tempfile.mkdtemp(prefix="convostore-demo-"), "demo.db")
    store = Store(db)
    try:
        (run_proxy_demo if through_proxy else run_demo)(store, echo=click.echo)
    finally:
        store.close()
