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


DEMO_KEY = "sandbox-demo-key"


def run_proxy_demo(store: Store, echo: Callable[[str], Any] = print, *, model: str = DEMO_MODEL) -> DemoResult:
    """A curl conversation through ``convostore proxy`` that survives the server forgetting it.

    Runs the real ``curl`` when it is installed (else sends the same requests with httpx and
    still prints the commands), so what is shown is what a shell user would type.
    """
    from .proxy import running
    from .sandbox import Sandbox

    result = DemoResult(db_url=store.url)
    day = 24 * 3600
    with Sandbox(retention=day) as sb, running(store, upstream=sb.base_url) as proxy:
        echo(f"Sandbox Interactions API on {sb.base_url} (offline, loopback only; keeps interactions 1 day)")
        echo(f"convostore proxy on {proxy.url} -> the sandbox, recording into {store.path or store.display_url}")
        echo("Any app points its Gemini base URL at the proxy; here the app is curl.\n")

        def turn(text: str, previous: str | None) -> str:
            body: dict[str, Any] = {"model": model, "input": text}
            if previous:
                body["previous_interaction_id"] = previous
            answer = _curl(f"{proxy.url}/v1/interactions", body, echo)
            iid: str = answer["id"]
            proxy.flush(30)  # the proxy records off the request path: wait for this turn's row
            row = store.get(iid)
            result.interaction_ids.append(iid)
            result.answers.append(row.output_text or "")
            echo(f"  model: {row.output_text}")
            echo(f"         [{iid[:24]}… archived, link={row.link}]")
            return iid

        echo("1. A conversation chained on the server with previous_interaction_id:")
        first = turn("Hi, my name is Karthik. I like to play cricket and watching movies.", None)
        second = turn("What is my name?", first)

        echo("\n2. A day passes on the sandbox's clock: the server forgets the chain (free tier: 1 day):")
        sb.advance(day + 1)
        echo(f"  sandbox: {second[:24]}… is gone; previous_interaction_id={second[:12]}… now fails with 400")

        echo("\n3. The app sends its next turn unchanged:")
        rebuilt_log = _capture_rebuild_log()
        try:
            result.rebuilt_id = turn("Do you still remember my name?", second)
        finally:
            logging.getLogger("convostore").removeHandler(rebuilt_log)
        chained, rebuilt = sb.requests[-2:]
        turns = sum(1 for step in rebuilt.get("input", []) if step.get("type") == "user_input")
        gone = str(chained.get("previous_interaction_id"))[:12]
        echo(f"  the proxy sent the turn as curl wrote it; the sandbox answered 400 ({gone}… is gone),")
        echo("  so the proxy rebuilt the chain from the archive and sent the turn again statelessly")
        echo(f"  ({turns} user turns in its input, no previous_interaction_id); curl only saw the 200.")
        for line in rebuilt_log.lines:
            echo(f"  log: {line}")

    echo("\nStored:")
    for row in store.chain(result.rebuilt_id):
        labels = ",".join(f"{k}={v}" for k, v in (row.labels or {}).items())
        echo(f"  {row.id[:28]:<28} {row.link or 'root':<10} {row.model:<24} {row.status:<10} labels: {labels}")
    where = store.path or store.display_url
    echo(f"\nArchive: {where}")
    echo(f"Try:  convostore --db {where} chain {result.rebuilt_id[:12]}   (or list, tree, history)")
    return result


def _curl(url: str, body: dict[str, Any], echo: Callable[[str], Any]) -> Any:
    """POST ``body`` with curl, printing the command as a shell user would type it."""
    import shlex
    import shutil
    import subprocess

    import httpx
    import orjson

    headers = {"x-goog-api-key": DEMO_KEY, "content-type": "application/json", "x-convostore-labels": "demo=proxy"}
    data = orjson.dumps(body).decode()
    flags = [f"-H {shlex.quote(f'{k}: {v}')}" for k, v in headers.items()]
    echo(f"  $ curl -s {url} \\\n      {' '.join(flags[:2])} \\\n      {flags[2]} \\\n      -d {shlex.quote(data)}")
    curl = shutil.which("curl")
    if curl is None:
        return httpx.post(url, headers=headers, content=data, timeout=60).raise_for_status().json()
    argv = [curl, "-sS", "--fail-with-body", "--max-time", "60", url, "-d", data]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    done = subprocess.run(argv, capture_output=True, timeout=90)
    if done.returncode != 0:
        raise RuntimeError(f"curl failed ({done.returncode}): {(done.stderr or done.stdout).decode()[-300:]}")
    return orjson.loads(done.stdout)
