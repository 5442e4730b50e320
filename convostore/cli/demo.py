"""`convostore demo`: the offline tour."""

from __future__ import annotations

import os
import tempfile

import click

from . import cli


@cli.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Record, expire, resume and replay a conversation against a local sandbox, offline.

    Uses --db if given, else a new SQLite file in a temporary directory (printed),
    so your own archive is untouched.
    """
    from ..demo import run_demo
    from ..store import Store

    db = ctx.find_root().obj.get("db")
    if not db:
        db = os.path.join(tempfile.mkdtemp(prefix="convostore-demo-"), "demo.db")
    store = Store(db)
    try:
        run_demo(store, echo=click.echo)
    finally:
        store.close()
