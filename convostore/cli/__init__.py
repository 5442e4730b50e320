"""The `convostore` command: a thin click layer over the library.

Each concern registers its commands from its own module (archive, sandbox, resume,
replay); every command is a few lines over a public library function.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..errors import ConvostoreError


class _Group(click.Group):
    """Turns library errors into one-line messages and a non-zero exit, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConvostoreError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)
        except BrokenPipeError:  # `convostore export | head`
            sys.exit(0)


@click.group(cls=_Group)
@click.option(
    "--db",
    envvar="CONVOSTORE_DB",
    metavar="URL|PATH",
    help="Database: a SQLAlchemy URL or a SQLite file path (default: $CONVOSTORE_DB, else the user data dir).",
)
@click.version_option(package_name="convostore")
@click.pass_context
def cli(ctx: click.Context, db: str | None) -> None:
    """Keep a local, lossless archive of Gemini Interactions API conversations."""
    ctx.obj = {"db": db}


def open_store(ctx: click.Context):  # type: ignore[no-untyped-def]
    """The Store named by --db, opened once per command invocation."""
    from ..store import Store

    obj = ctx.find_root().obj
    if obj.get("store") is None:
        obj["store"] = Store(obj.get("db"))
        ctx.call_on_close(obj["store"].close)
    return obj["store"]


def _register() -> None:
    # Each module adds its commands to `cli`; a missing module (work in progress) is skipped.
    import importlib

    for name in ("archive", "sandbox", "resume", "replay", "demo"):
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise


_register()


def main() -> None:
    cli(prog_name="convostore")
