"""The recorder/resume/replay contract, run under each google-genai release of the SDK matrix.

    python contract.py BASE_URL DB_PATH

Run in a side virtualenv (``tests/sdk_venvs.py``) with the checkout on PYTHONPATH, against
a sandbox the test started. It records a chained conversation, has the sandbox forget
it, continues it (convostore rebuilds the history), streams a turn, makes an async call
and replays the conversation on another model. It prints one JSON object with the ids it
got; ``tests/test_sdk_matrix.py`` checks the archive with the current code.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
import warnings

warnings.simplefilter("ignore")  # 1.x calls Interactions experimental

from google import genai  # noqa: E402
from google.genai import types  # noqa: E402

import convostore  # noqa: E402

MODEL = "gemini-2.5-flash"


def text_of(interaction: object) -> str:
    """The answer's text in either generation (1.x ``outputs``, 2.0+ ``steps``)."""
    parts: list[str] = []
    for item in getattr(interaction, "steps", None) or getattr(interaction, "outputs", None) or []:
        if getattr(item, "text", None):
            parts.append(item.text)
        for block in getattr(item, "content", None) or []:
            if getattr(block, "text", None):
                parts.append(block.text)
    return "".join(parts)


def main(base_url: str, db: str) -> dict:
    store = convostore.Store(db)
    http = types.HttpOptions(base_url=base_url)
    client = convostore.record(genai.Client(api_key="matrix-secret-key", http_options=http), store=store)
    out: dict = {"version": genai.__version__}

    t1 = client.interactions.create(model=MODEL, input="Hi, my name is Karthik.")
    t2 = client.interactions.create(model=MODEL, input="What is my name?", previous_interaction_id=t1.id)
    urllib.request.urlopen(urllib.request.Request(f"{base_url}/_sandbox/expire", method="POST"), timeout=30).read()
    t3 = client.interactions.create(model=MODEL, input="Do you still remember my name?", previous_interaction_id=t2.id)
    out.update(chain=[t1.id, t2.id, t3.id], t2_text=text_of(t2), t3_text=text_of(t3))

    streamed = ""
    for event in client.interactions.create(model=MODEL, input="Tell me a long story.", stream=True):
        delta = getattr(event, "delta", None)
        if getattr(delta, "type", None) == "text":
            streamed += delta.text
    out["stream_text"] = streamed

    async def aio() -> str:
        return (await client.aio.interactions.create(model=MODEL, input="Async hello.")).id

    out["async"] = asyncio.run(aio())
    run = convostore.replay(store, t3.id, model="gemini-2.5-pro", client=client, concurrency=1)
    out["run"] = {"id": run.id, "status": run.status}
    store.close()
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
