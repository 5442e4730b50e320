"""`list`, `show`, `chain`, `tree`, `search`, `stats`, `export`, `import`, `db upgrade`."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import click
import orjson

from .. import views
from . import cli, open_store
from .params import DATE, INTERACTION_ID

_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per line for listings).")


def _conversation(store: Any, interaction_id: str | None) -> str | None:
    """The conversation any of its interactions (or an id prefix) belongs to."""
    return store.get(interaction_id).conversation_id if interaction_id else None


def _short(text: str | None, width: int = 60) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _line(row: Any, indent: int = 0) -> str:
    when = f"{row.recorded_at:%Y-%m-%d %H:%M}" if row.recorded_at else "-"
    pad = "  " * indent
    return f"{pad}{row.id}  {when}  {row.model or row.agent or '-'}  {row.status or '-'}  {row.link or '-'}  {_short(row.input_text, 40)!r} → {_short(row.output_text, 50)!r}"


def _emit(rows: Iterable[Any], tree: bool = False) -> None:
    for row in rows:
        click.echo(_line(row, row.depth if tree else 0))


def _lines(items: Iterable[dict[str, Any]]) -> None:
    """A listing's ``--json``: one object per line (``convostore.views`` builds them)."""
    for item in items:
        click.echo(views.dumps(item).decode())


@cli.command("list")
@click.option("--limit", "-n", default=50, show_default=True, help="How many (0 for all).")
@click.option("--conversation", "-c", type=INTERACTION_ID, help="Only the conversation this interaction (any turn of it, or an id prefix) belongs to.")
@click.option("--model", "-m", help="Only this model.")
@click.option("--status", help="Only this status (completed, failed, ...).")
@click.option("--since", type=DATE, help="Only interactions recorded on or after this date (YYYY-MM-DD, or an age like 30d).")
@_json_option
@click.pass_context
def list_cmd(ctx: click.Context, limit: int, conversation: str | None, model: str | None, status: str | None, since: datetime | None, as_json: bool) -> None:
    """List recorded interactions, newest first."""
    store = open_store(ctx)
    if as_json:
        _lines(views.interactions(store, limit=limit, conversation=conversation, model=model, status=status, since=since))
        return
    rows = store.list(conversation=_conversation(store, conversation), model=model, status=status, since=since, limit=limit or None)
    _emit(rows)


@cli.command("show")
@click.argument("interaction_id", type=INTERACTION_ID)
@_json_option
@click.option("--raw", is_flag=True, help="Print the raw request and response as sent and received.")
@click.pass_context
def show_cmd(ctx: click.Context, interaction_id: str, as_json: bool, raw: bool) -> None:
    """Show one interaction (an id or a unique prefix)."""
    store = open_store(ctx)
    if as_json and not raw:
        click.echo(views.dumps(views.interaction(store, interaction_id), indent=True).decode())
        return
    row = store.get(interaction_id)
    if raw:
        click.echo(orjson.dumps({"request": row.request, "response": row.response}, option=orjson.OPT_INDENT_2).decode())
    else:
        for key, value in row.to_json_dict().items():
            if value is not None and key not in ("input_text", "output_text"):
                click.echo(f"{key:>24}: {value}")
        click.echo(f"\nuser:  {row.input_text}\nmodel: {row.output_text}")


@cli.command("chain")
@click.argument("interaction_id", type=INTERACTION_ID)
@_json_option
@click.pass_context
def chain_cmd(ctx: click.Context, interaction_id: str, as_json: bool) -> None:
    """The chain that ends at an interaction, root first."""
    if as_json:
        _lines(views.chain(open_store(ctx), interaction_id))
        return
    _emit(open_store(ctx).chain(interaction_id))


@cli.command("tree")
@click.argument("interaction_id", type=INTERACTION_ID)
@_json_option
@click.pass_context
def tree_cmd(ctx: click.Context, interaction_id: str, as_json: bool) -> None:
    """The whole conversation an interaction belongs to, branches indented."""
    if as_json:
        _lines(views.tree(open_store(ctx), interaction_id))
        return
    _emit(open_store(ctx).tree(interaction_id), tree=True)


@cli.command("search")
@click.argument("text")
@click.option("--limit", "-n", default=20, show_default=True, help="How many results.")
@click.option("--newest", is_flag=True, help="Newest matches first instead of most relevant.")
@_json_option
@click.pass_context
def search_cmd(ctx: click.Context, text: str, limit: int, newest: bool, as_json: bool) -> None:
    """Full-text search over input and output text."""
    order = "newest" if newest else "relevance"
    if as_json:
        _lines(views.search(open_store(ctx), text, limit=limit, order=order))
        return
    _emit(open_store(ctx).search(text, limit=limit, order=order))


@cli.command("stats")
@_json_option
@click.option("--prices", type=click.Path(dir_okay=False), help="A price table (JSON) over the shipped one; default $CONVOSTORE_PRICES.")
@click.pass_context
def stats_cmd(ctx: click.Context, as_json: bool, prices: str | None) -> None:
    """Counts by model, status and server state; tokens and cost; the archive's size."""
    from ..prices import load_prices

    stats = views.stats(open_store(ctx), load_prices(prices))
    if as_json:
        click.echo(views.dumps(stats, indent=True).decode())
        return
    from ..report import usd

    cost = stats.pop("cost")
    for key, value in stats.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
        click.echo(f"{key:>16}: {value}")
    per_model = ", ".join(f"{m['model']}: {usd(m['cost_usd'])}" for m in cost["models"]) or "-"
    click.echo(f"{'cost':>16}: {usd(cost['cost_usd'])} ({per_model}; prices of {cost['prices_taken']})")


@cli.command("export")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "markdown"]), default="jsonl", show_default=True, help="jsonl re-imports losslessly; markdown is for reading.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to FILE instead of stdout.")
@click.option("--conversation", "-c", type=INTERACTION_ID, help="Only the conversation this interaction (any turn of it, or an id prefix) belongs to.")
@click.option("--since", type=DATE, help="Only interactions recorded on or after this date (YYYY-MM-DD, or an age like 30d).")
@click.pass_context
def export_cmd(ctx: click.Context, fmt: str, output: str | None, conversation: str | None, since: datetime | None) -> None:
    """Stream the archive as JSONL or Markdown."""
    from ..archive import export_jsonl, export_markdown
    from ..private import open_private

    store = open_store(ctx)
    conversation = _conversation(store, conversation)  # before the output file is created
    binary = fmt == "jsonl"
    out = open_private(output, binary=binary) if output else (sys.stdout.buffer if binary else sys.stdout)
    try:
        fn = export_jsonl if binary else export_markdown
        n = fn(store, out, conversation=conversation, since=since)  # type: ignore[arg-type]
    finally:
        if output:
            out.close()
    click.echo(f"exported {n} interactions", err=True)


@cli.command("import")
@click.argument("file", type=click.Path(allow_dash=True))
@click.option(
    "--on-conflict",
    type=click.Choice(["skip", "fail", "replace"]),
    default="skip",
    show_default=True,
    help="An id already stored with different content: keep the stored row (skip), import nothing (fail), or take the file's (replace).",
)
@click.option(
    "--bulk",
    is_flag=True,
    help="PostgreSQL: build the indexes once at the end (a restore into an empty archive); "
    "the archive stays locked until the import ends, recorders and readers wait.",
)
@click.pass_context
def import_cmd(ctx: click.Context, file: str, on_conflict: str, bulk: bool) -> None:
    """Import a JSONL export (current or retired schema); all or nothing, idempotent."""
    from ..archive import import_jsonl

    source = sys.stdin.buffer if file == "-" else file  # one pass: stdin streams straight in
    result = import_jsonl(open_store(ctx), source, on_conflict=on_conflict, bulk=bulk)
    replaced = f", {result.replaced} replaced" if result.replaced else ""
    click.echo(f"imported {result.added} interactions ({result.skipped} already stored{replaced}, {result.runs} replay runs) from {result.lines} lines", err=True)
    if result.conflicts:
        more = ", …" if result.conflicts > len(result.conflict_ids) else ""
        kept = "took the file's version" if on_conflict == "replace" else "kept the stored version (--on-conflict replace takes the file's)"
        click.echo(
            f"warning: {result.conflicts} ids already stored with different content ({', '.join(result.conflict_ids)}{more}): {kept}",
            err=True,
        )


@cli.group("db")
def db_group() -> None:
    """Database maintenance."""


@db_group.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply the schema migrations (also done automatically when a store opens)."""
    rev = open_store(ctx).upgrade()
    click.echo(f"schema at revision {rev}", err=True)


@db_group.command("flush")
@click.pass_context
def db_flush(ctx: click.Context) -> None:
    """Write the rows recorders left spooled (the database was locked or away when they ended)."""
    from ..store import flush_spool

    written = flush_spool(ctx.find_root().obj.get("db"))
    click.echo(f"wrote {written} spooled write(s) to the archive", err=True)
