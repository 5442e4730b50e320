"""`delete`, `purge`: removing conversations from the archive (and the server with --server)."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import click
import orjson

from ..errors import ConvostoreError
from . import cli, open_store
from .params import DATE, INTERACTION_ID

_yes = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (required when stdin is not a terminal).")
_dry = click.option("--dry-run", is_flag=True, help="Only report what would be deleted.")
_server = click.option("--server", is_flag=True, help="Also delete on the server the interactions it may still hold (needs the API key).")
_json = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


def _confirm(plan: Any, what: str, yes: bool) -> None:
    """Ask on a terminal; refuse off one without --yes (a script must say it means it)."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConvostoreError(f"refusing to delete {what} without confirmation: stdin is not a terminal; pass --yes")
    extra = f" ({len(plan.live)} still on the server)" if plan.live else ""
    click.confirm(f"Delete {what}: {plan.interactions} interactions in {len(plan.conversations)} conversations{extra}?", abort=True, err=True)


def _report(result: Any, as_json: bool) -> None:
    if as_json:
        click.echo(orjson.dumps(result.to_dict()).decode())
        return
    verb = "would delete" if result.dry_run else "deleted"
    server = f"; on the server: {result.server_deleted} deleted, {result.server_gone} already gone" if (result.server_deleted or result.server_gone) else ""
    click.echo(f"{verb} {result.interactions} interactions in {len(result.conversations)} conversations, "
               f"{result.media} media, {result.runs} replay runs{server}", err=True)
    if result.dry_run:
        for iid in result.ids:
            click.echo(iid)


def _client(store: Any, server: bool) -> Any:
    if not server:
        return None
    from ..client import make_client

    return make_client(store)


@cli.command("delete")
@click.argument("interaction_id", type=INTERACTION_ID)
@click.option("--conversation", "-c", is_flag=True, help="Delete the whole conversation the interaction belongs to.")
@_server
@_dry
@_yes
@_json
@click.pass_context
def delete_cmd(ctx: click.Context, interaction_id: str, conversation: bool, server: bool, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Delete an interaction (or its whole conversation) with its replays, media and search entries."""
    from ..removal import delete

    store = open_store(ctx)
    plan = delete(store, interaction_id, conversation=conversation, dry_run=True)
    if not dry_run:
        client = _client(store, server)  # a missing key fails before the question
        _confirm(plan, f"conversation {plan.conversations[0]}" if conversation and plan.conversations else interaction_id, yes)
        plan = delete(store, interaction_id, conversation=conversation, client=client)
    _report(plan, as_json)


@cli.command("purge")
@click.option("--before", type=DATE, required=True, help="Delete conversations last active before this date (YYYY-MM-DD, or an age like 90d).")
@click.option("--model", "-m", help="Only conversations with a turn on this model.")
@_server
@_dry
@_yes
@_json
@click.pass_context
def purge_cmd(ctx: click.Context, before: datetime, model: str | None, server: bool, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Delete every conversation last active before a date, with its replays, media and search entries."""
    from ..removal import purge

    store = open_store(ctx)
    plan = purge(store, before, model=model, dry_run=True)
    if not dry_run and plan.ids:
        client = _client(store, server)
        _confirm(plan, f"conversations last active before {before:%Y-%m-%d %H:%M}", yes)
        plan = purge(store, before, model=model, client=client)
    _report(plan, as_json)
