"""The offline tour: everything convostore does, against the local sandbox, in seconds.

It records a conversation like the seed notebook's (a name given in turn 1, asked for
later), makes the sandbox forget it (what the real service does after 1 or 55 days),
continues the conversation anyway from the archive, and replays it on a second model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .store import Store

DEMO_MODEL = "gemini-3-flash-preview"
DEMO_REPLAY_MODEL = "gemini-2.5-flash"


@dataclass
class DemoResult:
    """What the demo stored, so callers (and tests) can check it."""

    db_url: str
    interaction_ids: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    rebuilt_id: str | None = None
    replay_run_id: str | None = None


def run_demo(
    store: Store,
    echo: Callable[[str], Any] = print,
    *,
    model: str = DEMO_MODEL,
    replay_model: str = DEMO_REPLAY_MODEL,
) -> DemoResult:
    """Record, expire, resume and replay one conversation against a private sandbox."""
    from google import genai
    from google.genai import types

    from .comparison import compare
    from .recorder import record
    from .replaying import replay
    from .report import render
    from .sandbox import Sandbox

    result = DemoResult(db_url=store.url)
    with Sandbox() as sb:
        echo(f"Sandbox Interactions API on {sb.base_url} (offline, loopback only)")
        echo(f"Recording into {store.path or store.display_url}\n")
        raw = genai.Client(api_key="sandbox-demo-key", http_options=types.HttpOptions(base_url=sb.base_url))
        client = record(raw, store=store)

        def turn(text: str, previous: str | None) -> str:
            kwargs: dict[str, Any] = {"model": model, "input": text}
            if previous:
                kwargs["previous_interaction_id"] = previous
            interaction = client.interactions.create(**kwargs)
            row = store.get(interaction.id)
            result.interaction_ids.append(interaction.id)
            result.answers.append(row.output_text or "")
            echo(f"  user:  {text}")
            echo(f"  model: {row.output_text}")
            iid: str = interaction.id
            echo(f"         [{iid[:24]}… link={row.link}]")
            return iid

        echo("1. A conversation chained on the server with previous_interaction_id:")
        first = turn("Hi, my name is Karthik. I like to play cricket and watching movies.", None)
        second = turn("What is my name?", first)

        echo("\n2. The server forgets it (the free tier keeps 1 day, paid 55 days):")
        sb.expire()
        echo("  sandbox: all interactions expired; previous_interaction_id now fails with 400")
        rebuilt_log = _capture_rebuild_log()
        try:
            third = turn("Do you still remember my name?", second)
        finally:
            logging.getLogger("convostore").removeHandler(rebuilt_log)
        result.rebuilt_id = third
        echo("  convostore rebuilt the history from the archive and carried on:")
        for line in rebuilt_log.lines:
            echo(f"  log: {line}")

        echo(f"\n3. The same conversation replayed on {replay_model} (forced mode), compared turn by turn:")
        run = replay(store, third, model=replay_model, mode="forced", client=client, concurrency=2)
        result.replay_run_id = run.id
        echo(render(compare(store, third), format="table"))

    echo("\nStored:")
    for row in store.chain(result.rebuilt_id):
        echo(f"  {row.id[:28]:<28} {row.link or 'root':<10} {row.model:<24} {row.status}")
    where = store.path or store.display_url
    echo(f"\nArchive: {where}")
    echo(f"Try:  convostore --db {where} list   (or chain, tree, history, compare ID)")
    return result


class _LogLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


def _capture_rebuild_log() -> _LogLines:
    handler = _LogLines()
    logger = logging.getLogger("convostore")
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler
