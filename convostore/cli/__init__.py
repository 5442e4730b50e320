"""The `convostore` command: a thin click layer over the library.

Each concern registers its commands from its own module (archive, sandbox, resume,
replay); every command is a few lines over a public library function. Failures are
handled in one place, `_Group.invoke`: whatever a command raises becomes one
`Error: ...` line with a hint on stderr and exit status 1 (`failures.describe`), unless
`--debug` (or `CONVOSTORE_DEBUG=1`) asks for the traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from .failures import debug_requested, describe

if TYPE_CHECKING:  # pragma: no cover
    from ..store import Store

#: Commands that may create a new archive; every other command refuses a path where none exists.
CREATES_ARCHIVE = frozenset({"chat", "import", "upgrade", "demo", "proxy"})


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


class _Group(click.Group):
    """Turns any failure into one `Error:` line and exit 1, never a traceback (unless --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except click.BadParameter as exc:  # a bad value: one line, exit 1 (usage errors keep click's exit 2)
            if debug_requested(ctx):
                raise
            _fail(exc.format_message())
        except click.UsageError:
            raise
        except BrokenPipeError:  # `convostore export | head`
            _quiet_broken_pipe()
        except Exception as exc:  # noqa: BLE001 - the one place every failure is turned into a line
            if debug_requested(ctx):
                raise
            _fail(describe(exc))


def _quiet_broken_pipe() -> None:
    # Point stdout at /dev/null so the interpreter's final flush does not complain.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    sys.exit(0)


def _set_db(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.ensure_object(dict)["db"] = value


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(dict)["debug"] = True
        logging.getLogger("convostore").setLevel(logging.DEBUG)
        for handler in logging.getLogger("convostore").handlers:
            if isinstance(handler, _StderrLines):
                handler.setLevel(logging.DEBUG)


_DB_HELP = "Database: a SQLAlchemy URL or a SQLite file path (default: $CONVOSTORE_DB, else the user data dir)."
_DEBUG_HELP = "Show the full traceback of a failure (also CONVOSTORE_DEBUG=1)."


def _db_option(**kwargs: Any) -> click.Option:
    return click.Option(["--db", "-d"], metavar="URL|PATH", help=_DB_HELP, callback=_set_db, expose_value=False, **kwargs)


def _debug_option() -> click.Option:
    return click.Option(["--debug"], is_flag=True, help=_DEBUG_HELP, callback=_set_debug, expose_value=False)


@click.group(cls=_Group)
@click.version_option(package_name="convostore")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Keep a local, lossless archive of Gemini Interactions API conversations."""
    ctx.ensure_object(dict)
    _log_to_stderr(debug_requested(ctx))


cli.params[:0] = [_db_option(is_eager=True), _debug_option()]


class _StderrLines(logging.Handler):
    """`convostore: message` on whatever stderr is now (click's test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(f"{record.name.split('.')[0]}: {record.getMessage()}", err=True)
        except Exception:  # noqa: BLE001 - logging must never break the command
            self.handleError(record)


def _log_to_stderr(debug: bool) -> None:
    """The library's warnings as one `convostore: ...` line each on stderr (data stays on stdout)."""
    logger = logging.getLogger("convostore")
    handler = next((h for h in logger.handlers if isinstance(h, _StderrLines)), None)
    if handler is None:
        handler = _StderrLines()
        logger.addHandler(handler)
    handler.setLevel(logging.DEBUG if debug else logging.WARNING)


def open_store(ctx: click.Context) -> "Store":
    """The Store named by --db, opened once per command invocation.

    Commands outside CREATES_ARCHIVE refuse a SQLite path where no archive exists
    rather than create one: a mistyped `--db` should not look like an empty archive.
    """
    from ..store import Store
    from ..store.engine import require_archive

    obj = ctx.find_root().obj
    if obj.get("store") is None:
        db = obj.get("db")
        if ctx.info_name not in CREATES_ARCHIVE:
            require_archive(db)
        obj["store"] = Store(db)
        ctx.call_on_close(obj["store"].close)
    store: Store = obj["store"]
    return store


def _add_global_options(group: click.Group) -> None:
    """`--db`/`-d` and `--debug` work after the subcommand too (`convostore list --db x`)."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _add_global_options(command)
        names = {opt for p in command.params for opt in getattr(p, "opts", [])}
        if "--db" not in names:
            command.params.append(_db_option())
        if "--debug" not in names:
            command.params.append(_debug_option())


def _register() -> None:
    # Each module adds its commands to `cli`; a missing module (work in progress) is skipped.
    import importlib

    for name in ("archive", "conversations", "maintenance", "sandbox", "resume", "replay", "demo", "removal", "proxy", "serve"):
        try:
            importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    _add_global_options(cli)


_register()


def main() -> None:
    cli(prog_name="convostore")
