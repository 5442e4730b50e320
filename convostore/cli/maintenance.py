"""`db optimize`: planner statistics, the search index's segments, free space."""

from __future__ import annotations

import click
import orjson

from . import open_store
from .archive import db_group


@db_group.command("optimize")
@click.option("--vacuum", is_flag=True, help="Also give free space back (SQLite rewrites the file; takes the write lock meanwhile).")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
@click.pass_context
def db_optimize(ctx: click.Context, vacuum: bool, as_json: bool) -> None:
    """Refresh planner statistics (ANALYZE), merge the search index, fold counters; --vacuum reclaims space."""
    result = open_store(ctx).optimize(vacuum=vacuum)
    if as_json:
        click.echo(orjson.dumps(result.__dict__).decode())
        return
    size = "" if result.bytes_after is None else f"; {result.bytes_before:,} -> {result.bytes_after:,} bytes"
    done = ["analyzed"] + (["search index merged"] if result.search_index_merged else []) + (["vacuumed"] if vacuum else [])
    click.echo(f"{', '.join(done)} in {result.seconds:.1f} s{size}")
