"""`history`, `resume`, `chat`, `expiring`, `refresh`: keeping conversations alive."""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

import click
import orjson

from . import cli, open_store
from .failures import debug_requested, describe
from .params import DURATION, INTERACTION_ID


def _dump(obj: Any) -> None:
    click.echo(orjson.dumps(obj, option=orjson.OPT_INDENT_2, default=str).decode())


def _answer_text(store: Any, interaction: Any) -> str:
    try:
        return store.get(interaction.id).output_text or ""
    except Exception:  # noqa: BLE001 - fall back to the SDK object's own text
        return getattr(interaction, "output_text", "") or ""


@cli.command("history")
@click.argument("interaction_id", type=INTERACTION_ID)
@click.option("--model", "-m", help="Target model: thought signatures are kept only for the model that made them.")
@click.option("--format", "fmt", type=click.Choice(["steps", "turns"]), default="steps", show_default=True, help="Current steps, or retired {role, content} turns.")
@click.option("--json", "as_json", is_flag=True, help="Print the full JSON object (input, system instruction, tools, generation config) instead of the input list alone.")
@click.pass_context
def history_cmd(ctx: click.Context, interaction_id: str, model: str | None, fmt: str, as_json: bool) -> None:
    """Print the stateless input (JSON) that continues the chain ending at INTERACTION_ID."""
    from .. import views
    from ..rebuild import history

    if as_json:
        _dump(views.history(open_store(ctx), interaction_id, model=model, format=fmt))
        return
    hist = history(open_store(ctx), interaction_id, model=model, format=fmt)  # type: ignore[arg-type]
    click.echo(f"{hist.turns} turns ending at {hist.head_id}, for {hist.model}", err=True)
    _dump(hist.input)


@cli.command("resume")
@click.argument("interaction_id", type=INTERACTION_ID)
@click.argument("text")
@click.option("--model", "-m", help="Model for the new turn (default: the chain's).")
@click.option("--stream", is_flag=True, help="Stream the answer as it is generated.")
@click.pass_context
def resume_cmd(ctx: click.Context, interaction_id: str, text: str, model: str | None, stream: bool) -> None:
    """Continue a stored chain with TEXT: server state if alive, rebuilt history if not."""
    from ..client import make_client
    from ..resume import continue_chain

    store = open_store(ctx)
    client = make_client(store)
    result = continue_chain(store, client, interaction_id, text, model=model, stream=stream)
    if stream:
        new_id = _print_stream(result)
        click.echo(f"[{new_id}]", err=True)
    else:
        click.echo(_answer_text(store, result))
        click.echo(f"[{result.id}]", err=True)


def _print_stream(events: Any) -> str | None:
    """Echo text deltas as they arrive; return the interaction id."""
    new_id = None
    for event in events:
        data = getattr(event, "model_dump", lambda **_: event)(mode="json", exclude_none=True)
        interaction = data.get("interaction") or {}
        new_id = interaction.get("id") or data.get("interaction_id") or new_id
        delta = data.get("delta") or {}
        if isinstance(delta, dict) and delta.get("type") == "text" and delta.get("text"):
            click.echo(delta["text"], nl=False)
            sys.stdout.flush()
    click.echo()
    return new_id


@cli.command("chat")
@click.option("--model", "-m", help="Model to talk to (default: the continued chain's, else gemini-2.5-flash).")
@click.option("--conversation", "-c", "--cid", "cid", type=INTERACTION_ID, help="Continue the conversation (or chain) this interaction id belongs to.")
@click.option("--continue", "cont", is_flag=True, help="Continue the most recent conversation.")
@click.pass_context
def chat_cmd(ctx: click.Context, model: str | None, cont: bool, cid: str | None) -> None:
    """An interactive conversation that records every turn and survives expiry (/exit or EOF quits).

    A turn that fails (network, API, key) prints one `Error:` line and the session goes
    on from the last good turn; the exit status is 1 if any turn failed.
    """
    from ..client import make_client
    from ..resume import chat_head, continue_chain

    store = open_store(ctx)
    head = chat_head(store, latest=cont, interaction_id=cid)
    client = make_client(store)
    if head is not None:
        click.echo(f"Continuing {head} ({store.get(head).model})", err=True)
    model = model or (store.get(head).model if head else "gemini-2.5-flash")
    interactive = sys.stdin.isatty()
    failed = False
    while True:
        if interactive:
            click.echo("> ", nl=False)
        line = sys.stdin.readline()
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            break
        try:
            if head is None:
                interaction = client.interactions.create(model=model, input=text)
            else:
                interaction = continue_chain(store, client, head, text, model=model)
        except Exception as exc:  # noqa: BLE001 - one turn failed; the conversation is not lost
            if debug_requested(ctx):
                raise
            failed = True
            click.echo(f"Error: {describe(exc)}", err=True)
            continue
        head = interaction.id
        click.echo(_answer_text(store, interaction))
        sys.stdout.flush()
    if failed:
        ctx.exit(1)


@cli.command("expiring")
@click.option("--within", type=DURATION, default="2d", show_default=True, help="Window: e.g. 12h, 2d, 1w.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@click.pass_context
def expiring_cmd(ctx: click.Context, within: timedelta, as_json: bool) -> None:
    """List conversations whose server state ends within the window."""
    from .. import views
    from ..resume import expiring

    if as_json:
        for data in views.expiring(open_store(ctx), within):
            click.echo(views.dumps(data).decode())
        return
    for item in expiring(open_store(ctx), within):
        click.echo(f"{item.expires_at:%Y-%m-%d %H:%M}  {item.conversation_id}  head={item.head_id}  {item.model}  {item.turns} turns")


@cli.command("refresh")
@click.argument("ids", nargs=-1, type=INTERACTION_ID)
@click.pass_context
def refresh_cmd(ctx: click.Context, ids: tuple[str, ...]) -> None:
    """Re-read live interactions (or IDS) from the server; mark the ones it no longer has."""
    from ..client import make_client
    from ..resume import refresh

    store = open_store(ctx)
    result = refresh(store, make_client(store), list(ids) or None)
    click.echo(f"checked {result.checked}: {result.live} live, {result.gone} gone, {result.completed} newly completed", err=True)
