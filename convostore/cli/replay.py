"""`replay`, `runs`, `compare`: re-running conversations on other models and reading the results."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import Any

import click
import orjson

from . import cli, open_store
from .params import INTERACTION_ID


def _parse_set(values: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {item!r}", param_hint="--set")
        try:
            out[key] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            out[key] = raw
    return out


def _since(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not a date: {value!r} (use YYYY-MM-DD)", param_hint="--since") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@cli.command("replay")
@click.argument("ids", nargs=-1, type=INTERACTION_ID)
@click.option("--model", "-m", help="Target model to replay on (required unless --resume).")
@click.option("--mode", type=click.Choice(["forced", "free"]), default="forced", show_default=True, help="forced: original history at every turn; free: the target builds its own.")
@click.option("--concurrency", "-j", type=click.IntRange(1, 64), default=4, show_default=True, help="Turns or conversations in flight at once.")
@click.option("--all", "all_", is_flag=True, help="Replay every stored conversation.")
@click.option("--since", help="Replay conversations started on or after this date (YYYY-MM-DD).")
@click.option("--resume", "resume_run", metavar="RUN_ID", help="Continue an interrupted run; no completed turn is sent again.")
@click.option("--temperature", type=float, help="Override the original turns' temperature.")
@click.option("--system-instruction", help="Override the original turns' system instruction.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a request field (generation_config.top_p=0.5, generation_config.thinking_config.thinking_level=low; a JSON value, null drops the field).")
@click.option("--no-store", is_flag=True, help="Send replayed turns with store=False (rebuilt from the archive).")
@click.option("--via", type=click.Choice(["direct", "sdk"]), default="direct", show_default=True, help="direct: stored wire JSON on the client's own connection; sdk: the SDK's interactions.create (about 10 ms more CPU per turn).")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON.")
@click.pass_context
def replay_cmd(ctx: click.Context, ids: tuple[str, ...], model: str | None, mode: str, concurrency: int, all_: bool, since: str | None, resume_run: str | None, temperature: float | None, system_instruction: str | None, sets: tuple[str, ...], no_store: bool, via: str, as_json: bool) -> None:
    """Replay stored conversations (the chains ending at IDS) on another model."""
    from ..replaying import replay

    store = open_store(ctx)
    targets: list[str] = list(ids)
    if all_ or since:
        targets += [row.id for row in store.conversations(since=_since(since) if since else None)]
    if not resume_run and not model:
        raise click.UsageError("--model is required (or --resume RUN_ID)")
    from ..client import make_client

    client = make_client(store)  # a missing key fails here, before any run or progress bar
    with click.progressbar(length=1, label="replaying", file=sys.stderr) as bar:

        def progress(done: int, total: int) -> None:
            bar.length = max(total, 1)
            bar.update(done - bar.pos)

        run = replay(store, targets or None, model=model, mode=mode, concurrency=concurrency, temperature=temperature, system_instruction=system_instruction, overrides=_parse_set(sets), store_remote=not no_store, progress=progress, resume_run=resume_run, direct=via == "direct", client=client)
    if as_json:
        click.echo(orjson.dumps(run.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        s = run.summary
        verdicts = ", ".join(f"{k} {v}" for k, v in sorted((s.get("verdicts") or {}).items())) or "none"
        click.echo(f"{run.id}  {run.status}  {run.model} ({run.mode})  {s.get('conversations')} conversations, {s.get('turns')} turns, sent {s.get('sent')}, verdicts: {verdicts}, {s.get('elapsed_s')} s")
    if run.status != "completed":  # a failed turn fails the job (exit codes: README)
        failed = (run.summary.get("verdicts") or {}).get("failed", 0)
        click.echo(f"replay {run.status}: {failed} turn(s) failed", err=True)
        sys.exit(1)


@cli.group("runs", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per run, one per line.")
@click.option("--prices", type=click.Path(dir_okay=False), help="A price table (JSON) over the shipped one; default $CONVOSTORE_PRICES.")
@click.pass_context
def runs_cmd(ctx: click.Context, as_json: bool, prices: str | None) -> None:
    """List replay runs, newest first, with their cost (a dead run's status is `interrupted`)."""
    if ctx.invoked_subcommand is not None:
        return
    from .. import views
    from ..prices import load_prices
    from ..replaying import list_runs, run_costs
    from ..report import runs_table

    store = open_store(ctx)
    if as_json:
        for data in views.runs(store, load_prices(prices)):
            click.echo(views.dumps(data).decode())
        return
    click.echo(runs_table(list_runs(store), costs=run_costs(store, load_prices(prices))))


@runs_cmd.command("delete")
@click.argument("run_ids", nargs=-1, required=True, metavar="RUN...")
@click.pass_context
def runs_delete_cmd(ctx: click.Context, run_ids: tuple[str, ...]) -> None:
    """Delete replay runs and every interaction they recorded."""
    from ..replaying import delete_run

    store = open_store(ctx)
    for run_id in run_ids:
        removed = delete_run(store, run_id)
        click.echo(f"deleted {run_id} and its {removed} replayed interactions")


@cli.command("compare")
@click.argument("refs", nargs=-1, type=INTERACTION_ID)
@click.option("--source-model", metavar="MODEL", help="Pick the runs that replayed conversations of this original model.")
@click.option("--since", help="Pick the runs started on or after this date (YYYY-MM-DD).")
@click.option("--conversation", "-c", type=INTERACTION_ID, metavar="ID", help="Show this conversation (any interaction of it) turn by turn.")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "json", "html"]), default="table", show_default=True, help="Output format; html is one self-contained file.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write to FILE instead of stdout.")
@click.option("--prices", type=click.Path(dir_okay=False), help="A price table (JSON, as convostore/data/prices.json) over the shipped one; default $CONVOSTORE_PRICES.")
@click.option("--judge", "judge_model", metavar="MODEL", help="Have MODEL grade each replayed answer against the original (cached in the archive; sandbox-judge offline).")
@click.option("--rubric", type=click.Path(dir_okay=False), help="The judge's grading instructions, from FILE (default: sameness of facts, names, calls).")
@click.option("--fail-under", type=float, metavar="SCORE", help="Exit 1 when a run's mean score (judge, else similarity) is under SCORE.")
@click.option("--max-failed", type=click.IntRange(0), metavar="N", help="Exit 1 when a run has more than N failed or missing turns.")
@click.option("--max-p95-latency", type=float, metavar="MS", help="Exit 1 when a run's p95 latency is over MS milliseconds.")
@click.option("--max-cost", type=float, metavar="USD", help="Exit 1 when a run cost more than USD (or its cost is unknown).")
@click.pass_context
def compare_cmd(ctx: click.Context, refs: tuple[str, ...], source_model: str | None, since: str | None, conversation: str | None, fmt: str, output: str | None, prices: str | None, judge_model: str | None, rubric: str | None, fail_under: float | None, max_failed: int | None, max_p95_latency: float | None, max_cost: float | None) -> None:
    """Compare replay RUNs (or the conversation of an interaction ID) with the originals."""
    from ..comparison import compare, gate
    from ..prices import load_prices
    from ..report import write

    if not refs and not source_model and not since:
        raise click.UsageError("give RUN ids, an interaction ID, or --source-model/--since")
    store = open_store(ctx)
    judge = None
    if judge_model:
        from ..client import make_client
        from ..judging import Judge, read_rubric

        judge = Judge(store, judge_model, client=make_client(store), rubric=read_rubric(rubric))
    elif rubric:
        raise click.UsageError("--rubric needs --judge MODEL")
    c = compare(store, *refs, source_model=source_model, since=_since(since) if since else None,
                conversation=conversation, prices=load_prices(prices), judge=judge)

    if output:
        from ..private import open_private

        with open_private(output) as fh:
            write(c, fh, fmt)
        click.echo(f"wrote {output}", err=True)
    else:
        write(c, sys.stdout, fmt)
    if judge is not None:
        click.echo(f"judge {judge.model}: {judge.requests} requests sent", err=True)
    missed = gate(c, fail_under=fail_under, max_failed=max_failed, max_p95_latency_ms=max_p95_latency, max_cost_usd=max_cost)
    for line in missed:
        click.echo(f"gate: {line}", err=True)
    if missed:
        sys.exit(1)
