"""Record a short conversation with convostore.

    python examples/quickstart.py                # offline, against the bundled sandbox
    GEMINI_API_KEY=... python examples/quickstart.py   # the real Interactions API

Everything the client sends and receives through ``client.interactions`` lands in the
archive (``CONVOSTORE_DB``, else a file in your data directory; here a temporary file
unless ``CONVOSTORE_DB`` is set). The API key is used for the calls and never stored.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from google import genai
from google.genai import types

import convostore

MODEL = os.environ.get("CONVOSTORE_MODEL", "gemini-3-flash-preview")


def converse(client: genai.Client, store: convostore.Store) -> str:
    """Three turns chained on the server; returns the last interaction's id."""
    first = client.interactions.create(model=MODEL, input="Hi, my name is Karthik. I like cricket and movies.")
    second = client.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=first.id)
    print("Streaming the third turn:")
    stream = client.interactions.create(
        model=MODEL, input="Suggest a film about cricket, in one line.", previous_interaction_id=second.id, stream=True
    )
    last_id = None
    for event in stream:
        if getattr(event, "event_type", None) == "step.delta" and getattr(event.delta, "type", None) == "text":
            print(event.delta.text, end="", flush=True)
        interaction = getattr(event, "interaction", None)
        if interaction is not None and getattr(interaction, "id", None):
            last_id = interaction.id
    print("\n")
    return last_id or second.id


def main() -> None:
    key = os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
    with contextlib.ExitStack() as stack:
        if os.environ.get("CONVOSTORE_DB"):
            store = convostore.Store()
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            store = convostore.Store(str(tmp / "quickstart.db"))
        if key:
            raw = genai.Client(api_key=key)
            print("Recording against the real Interactions API")
        else:
            sandbox = stack.enter_context(convostore.Sandbox())
            raw = genai.Client(api_key="sandbox-key", http_options=types.HttpOptions(base_url=sandbox.base_url))
            print(f"No GEMINI_API_KEY: recording against the offline sandbox at {sandbox.base_url}")
        client = convostore.record(raw, store=store)
        head = converse(client, store)
        print(f"Stored chain ({store.url}):")
        for row in store.chain(head):
            print(f"  {row.id[:30]:<30} {row.link or 'root':<8} {row.status:<10} user: {row.input_text[:40]!r}")
            print(f"  {'':<30} {'':<8} {'':<10} model: {row.output_text[:60]!r}")


if __name__ == "__main__":
    main()
