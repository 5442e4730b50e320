"""`conversations`: one page of conversations by latest activity, keyset-paginated."""

from __future__ import annotations

from datetime import datetime

import click
from .. import views
from . import cli, open_store
from .archive import _short
from .params import DATE


@cli.command("conversations")
@click.option("--limit", "-n", default=50, show_default=True, help="How many conversations on the page.")
@click.option("--after", metavar="CURSOR", help="Continue after a page: the cursor the previous page printed.")
@click.option("--model", "-m", help="Only conversations whose newest turn used this model.")
@click.option("--status", help="Only conversations whose newest turn has this status (completed, failed, ...).")
@click.option("--server-state", help="Only conversations whose newest turn has this server state (live, expired, ...).")
@click.option("--label", metavar="KEY[=VALUE]", help="Only conversations whose newest turn carries this label.")
@click.option("--since", type=DATE, help="Only conversations active on or after this date (YYYY-MM-DD, or an age like 30d).")
@click.option("--until", type=DATE, help="Only conversations last active before this date (YYYY-MM-DD, or an age like 30d).")
@click.option("--replays", is_flag=True, help="Include replayed conversations.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: the page's items and its next cursor.")
@click.pass_context
def conversations_cmd(ctx: click.Context, limit: int, after: str | None, model: str | None, status: str | None,
                      server_state: str | None, label: str | None, since: datetime | None, until: datetime | None,
                      replays: bool, as_json: bool) -> None:
    """Conversations by latest activity, newest first, a page at a time."""
    filters = dict(limit=limit, after=after, model=model, status=status, server_state=server_state, label=label,
                   since=since, until=until, replays=replays)
    if as_json:
        click.echo(views.dumps(views.conversations(open_store(ctx), **filters)).decode())
        return
    page = open_store(ctx).list_conversations(**filters)  # type: ignore[arg-type]
    for c in page.items:
        when = f"{c.updated_at:%Y-%m-%d %H:%M}" if c.updated_at else "-"
        click.echo(f"{c.id}  {when}  {c.model or '-'}  {c.status or '-'}  {c.turns} turns  {_short(c.first_input, 50)!r}")
    if page.next:
        click.echo(f"more: convostore conversations --after {page.next}", err=True)
